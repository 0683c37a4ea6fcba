//! `--report DIR`: scikit-learn's classification report, the confusion matrix, top-k accuracies
//! and the most confidently misclassified files, printed and written — for `evaluate`, and for
//! `train` and `transfer` on their validation data.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use keras_tch::data::dataset::Dataset;
use keras_tch::data::loader::Loading;
use keras_tch::graph::Model;
use keras_tch::train::compile::CompileConfig;
use keras_tch::train::data_parallel::DataParallel;
use keras_tch::train::evaluate::{evaluate_dataset, evaluate_with_report, Evaluation, ReportRequest};
use keras_tch::train::report::EvaluationReport;

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Print scikit-learn's classification_report (per-class precision, recall, F1, support;
    /// macro and weighted averages), the confusion matrix, top-k accuracies and the most
    /// confidently misclassified files, and write them to DIR (report.txt, report.json,
    /// confusion_matrix.png)
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
    /// Top-k accuracies the report gives (those below the number of classes)
    #[arg(long, value_delimiter = ',', default_values_t = [5usize])]
    pub top_k: Vec<usize>,
    /// How many of the most confidently misclassified files the report lists
    #[arg(long, default_value_t = 10)]
    pub mistakes: usize,
}

impl ReportArgs {
    /// What `--report` asks for, when given.
    pub fn request(&self) -> Option<ReportRequest> {
        self.report.as_ref().map(|_| ReportRequest { top_k: self.top_k.clone(), mistakes: self.mistakes })
    }

    /// `model` evaluated on `data`, with the report of the same predictions when `--report` was
    /// given (one pass over the data); shared out between the processes of `parallel`'s job
    /// when given (every process gets the whole result).
    pub fn evaluate(
        &self,
        model: &Model,
        compile: &CompileConfig,
        data: &Dataset,
        batch_size: i64,
        loading: &Loading,
        parallel: Option<&DataParallel>,
    ) -> Result<(Evaluation, Option<EvaluationReport>)> {
        match (self.request(), parallel) {
            (Some(request), Some(parallel)) => {
                let (evaluation, report) = parallel.evaluate_with_report(model, compile, data, batch_size, loading, &request)?;
                Ok((evaluation, Some(report)))
            }
            (Some(request), None) => {
                let (evaluation, report) = evaluate_with_report(model, compile, data, batch_size, loading, &request)?;
                Ok((evaluation, Some(report)))
            }
            (None, Some(parallel)) => Ok((parallel.evaluate(model, compile, data, batch_size, loading)?, None)),
            (None, None) => Ok((evaluate_dataset(model, compile, data, batch_size, loading)?, None)),
        }
    }

    /// Write `report` to `--report`'s folder, printing it unless `quiet`.
    pub fn write(&self, report: &EvaluationReport, quiet: bool) -> Result<()> {
        let Some(dir) = &self.report else { return Ok(()) };
        report.save(dir)?;
        if !quiet {
            print!("\n{}", report.text());
            println!("\nReport written to {} (report.txt, report.json, confusion_matrix.png)", dir.display());
        }
        Ok(())
    }
}
