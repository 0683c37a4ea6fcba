//! Keras's data parallelism (`tf.distribute`'s mirrored strategies) over a c10d process group:
//! every rank holds the whole model; `batch_size` is the *global* batch, and each rank takes its
//! slice of every global batch; the gradients are summed across ranks from per-replica losses
//! scaled by the global batch size (Keras's `compute_average_loss`), so each step applies the
//! true mean gradient of the global batch — a short last batch included — and every rank applies
//! the same update. BatchNorm normalises with each replica's own batch statistics (Keras's
//! default, `synchronized=False`), the moving statistics averaged across ranks at each epoch's
//! end; a `synchronized=True` BatchNorm normalises with the global batch's (see
//! [`crate::layers::synchronized_batch_norm`]). Rank 0 (Keras's chief) alone writes files.

use std::ops::Range;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use tch::{no_grad, Kind, Tensor};

use super::compile::CompileConfig;
use super::distributed::ProcessGroup;
use super::evaluate::{evaluate_dataset, evaluate_scoring, report_classes, report_of, Evaluation, ReportRequest};
use super::report::EvaluationReport;
use crate::data::dataset::Dataset;
use crate::data::loader::Loading;
use crate::graph::Model;
use crate::layers::synchronized_batch_norm::ReplicaSum;

/// One rank's side of a data-parallel job.
#[derive(Clone)]
pub struct DataParallel {
    group: Arc<ProcessGroup>,
    batch_statistics: Arc<BatchStatisticsSum>,
}

/// The replicas as synchronized BatchNorm sees them: a differentiable sum over the ranks, whose
/// first failure waits here for the training step to report (a layer's forward cannot fail).
struct BatchStatisticsSum {
    group: Arc<ProcessGroup>,
    failure: Mutex<Option<anyhow::Error>>,
}

impl ReplicaSum for BatchStatisticsSum {
    fn sum(&self, tensor: &Tensor) -> Option<Tensor> {
        match self.group.cross_replica_sum(tensor) {
            Ok(sum) => Some(sum),
            Err(error) => {
                self.failure.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).get_or_insert(error);
                None
            }
        }
    }
}

impl std::fmt::Debug for DataParallel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DataParallel(rank {} of {})", self.rank(), self.world_size())
    }
}

/// What the ranks sum at each step beside the gradients: this rank's loss sum, correct count and
/// whether it was interrupted (Ctrl-C reaches every rank, not always at the same batch).
pub struct StepTotals {
    pub loss_sum: f64,
    pub correct: f64,
    pub interrupted: bool,
}

impl DataParallel {
    pub fn new(group: ProcessGroup) -> Self {
        let group = Arc::new(group);
        Self { batch_statistics: Arc::new(BatchStatisticsSum { group: group.clone(), failure: Mutex::new(None) }), group }
    }

    /// What synchronized BatchNorm layers sum their statistics with, in this job.
    pub fn batch_statistics(&self) -> Arc<dyn ReplicaSum> {
        self.batch_statistics.clone()
    }

    /// The error of a synchronized BatchNorm's collective since the last call, if one failed.
    pub fn check_batch_statistics(&self) -> Result<()> {
        match self.batch_statistics.failure.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    pub fn rank(&self) -> usize {
        self.group.rank()
    }

    pub fn world_size(&self) -> usize {
        self.group.world_size()
    }

    /// Keras's chief worker: the rank that prints and writes files.
    pub fn is_chief(&self) -> bool {
        self.rank() == 0
    }

    pub fn group(&self) -> &ProcessGroup {
        &self.group
    }

    /// Each rank's share of a global batch of `global_batch_size`: it must divide evenly, as
    /// Keras's distribution strategies require.
    pub fn replica_batch_size(&self, global_batch_size: usize) -> Result<usize> {
        let world = self.world_size();
        if global_batch_size % world != 0 {
            bail!(
                "the batch size {global_batch_size} is the global batch, split across {world} processes: it must be a multiple of {world}"
            );
        }
        Ok(global_batch_size / world)
    }

    /// This rank's slice of a global batch of `size` samples (a short last batch is split as
    /// evenly as possible, the first ranks taking one more).
    pub fn slice(&self, size: usize) -> Range<usize> {
        replica_slice(size, self.rank(), self.world_size())
    }

    /// This rank's samples of an epoch, in order: its slice of each global batch of `order`.
    pub fn local_order(&self, order: &[usize], global_batch_size: usize) -> Vec<usize> {
        order.chunks(global_batch_size).flat_map(|batch| batch[self.slice(batch.len())].to_vec()).collect()
    }

    /// Every weight, trainable or not, copied from rank 0 (so the replicas start equal, as
    /// Keras's mirrored variables do).
    pub fn broadcast_weights(&self, model: &Model) -> Result<()> {
        let weights: Vec<Tensor> =
            model.layers().iter().flat_map(|node| node.layer.weights().into_iter().map(|w| w.tensor.shallow_clone())).collect();
        self.group.broadcast(&weights.iter().collect::<Vec<_>>(), 0)
    }

    /// The non-trainable weights (BatchNorm's moving statistics) replaced by their mean over
    /// the ranks.
    pub fn average_non_trainable_weights(&self, model: &Model) -> Result<()> {
        let weights: Vec<Tensor> = model
            .layers()
            .iter()
            .flat_map(|node| node.layer.weights().into_iter().filter(|w| !w.trainable).map(|w| w.tensor.shallow_clone()))
            .filter(|tensor| tensor.is_floating_point())
            .collect();
        if weights.is_empty() {
            return Ok(());
        }
        self.group.all_reduce_sum(&weights.iter().collect::<Vec<_>>())?;
        let world = self.world_size() as f64;
        no_grad(|| {
            for weight in &weights {
                let _ = weight.shallow_clone().g_div_scalar_(world);
            }
        });
        Ok(())
    }

    /// Keras's `evaluate` on `data`, each rank evaluating its contiguous share and the sums
    /// reduced: the same loss and accuracy as one process evaluating it all.
    pub fn evaluate(
        &self,
        model: &Model,
        compile: &CompileConfig,
        data: &Dataset,
        batch_size: i64,
        loading: &Loading,
    ) -> Result<Evaluation> {
        let share: Vec<usize> = self.slice(data.len()).collect();
        let local =
            if share.is_empty() { None } else { Some(evaluate_dataset(model, compile, &data.select(&share), batch_size, loading)?) };
        self.reduce_evaluation(local.as_ref(), share.len(), compile)
    }

    /// [`DataParallel::evaluate`] with scikit-learn's report of the same predictions: each rank
    /// scores its share, and every rank assembles the scores in sample order — the report one
    /// process makes (rank 0 writes it).
    pub fn evaluate_with_report(
        &self,
        model: &Model,
        compile: &CompileConfig,
        data: &Dataset,
        batch_size: i64,
        loading: &Loading,
        request: &ReportRequest,
    ) -> Result<(Evaluation, EvaluationReport)> {
        let share: Vec<usize> = self.slice(data.len()).collect();
        let local =
            if share.is_empty() { None } else { Some(evaluate_scoring(model, compile, &data.select(&share), batch_size, loading)?) };
        let evaluation = self.reduce_evaluation(local.as_ref().map(|(evaluation, ..)| evaluation), share.len(), compile)?;
        let present = vec![true; share.len()];
        let classes = report_classes(model)?;
        let (scores, _) = self.gather_rows(data.len(), &[classes], local.as_ref().map(|(_, scores, _)| scores), &present)?;
        let y_true = local.as_ref().map(|(.., y_true)| y_true.to_kind(Kind::Float));
        let (y_true, _) = self.gather_rows(data.len(), &[], y_true.as_ref(), &present)?;
        Ok((evaluation, report_of(data, &scores, &y_true, request)?))
    }

    /// The evaluation of the whole data from each rank's of its `n` samples (`None`: none).
    fn reduce_evaluation(&self, local: Option<&Evaluation>, n: usize, compile: &CompileConfig) -> Result<Evaluation> {
        let n = n as f64;
        let sums = Tensor::from_slice(&[local.map_or(0.0, |e| e.loss * n), local.and_then(|e| e.accuracy).map_or(0.0, |a| a * n), n]);
        self.group.all_reduce_sum(&[&sums])?;
        let [loss_sum, correct, total] = <[f64; 3]>::try_from(Vec::<f64>::try_from(&sums)?).expect("three sums");
        if total == 0.0 {
            bail!("evaluate: no samples");
        }
        Ok(Evaluation { loss: loss_sum / total, accuracy: compile.accuracy.map(|_| correct / total) })
    }

    /// Rows each rank computed for its slice of `total` items, assembled in item order on every
    /// rank: `rows` holds this rank's rows for the items of its slice marked `present` (in
    /// order), each of `row_shape`. Returns the `total` rows (zeros where absent) and which items
    /// are present. (A sum where every row is zero but its owner's.)
    pub fn gather_rows(&self, total: usize, row_shape: &[i64], rows: Option<&Tensor>, present: &[bool]) -> Result<(Tensor, Vec<bool>)> {
        let mine = self.slice(total);
        if present.len() != mine.len() {
            bail!("gather_rows: {} flags for a slice of {} items", present.len(), mine.len());
        }
        let shape: Vec<i64> = std::iter::once(total as i64).chain(row_shape.iter().copied()).collect();
        let all = Tensor::zeros(&shape, (Kind::Float, tch::Device::Cpu));
        let flags = Tensor::zeros([total as i64], (Kind::Float, tch::Device::Cpu));
        let mut next_row = 0;
        no_grad(|| -> Result<()> {
            for (offset, _) in present.iter().enumerate().filter(|(_, present)| **present) {
                let rows = rows.context("gather_rows: items marked present but no rows")?;
                let row = (mine.start + offset) as i64;
                all.get(row).copy_(&rows.get(next_row).to_device(tch::Device::Cpu).to_kind(Kind::Float));
                let _ = flags.get(row).fill_(1.0);
                next_row += 1;
            }
            Ok(())
        })?;
        self.group.all_reduce_sum(&[&all, &flags])?;
        let present = Vec::<f32>::try_from(&flags)?.into_iter().map(|flag| flag > 0.0).collect();
        Ok((all, present))
    }

    /// Whether `flag` holds on every rank.
    pub fn all(&self, flag: bool) -> Result<bool> {
        let count = Tensor::from_slice(&[f32::from(u8::from(flag))]);
        self.group.all_reduce_sum(&[&count])?;
        Ok(count.double_value(&[0]) as usize == self.world_size())
    }

    /// Sums `gradients` (in place) and this rank's `totals` over the ranks, in one collective.
    pub fn sum_step(&self, gradients: &[Tensor], totals: StepTotals) -> Result<StepTotals> {
        let device = gradients.first().map_or(tch::Device::Cpu, |g| g.device());
        let values = Tensor::from_slice(&[totals.loss_sum as f32, totals.correct as f32, f32::from(u8::from(totals.interrupted))])
            .to_kind(Kind::Float)
            .to_device(device);
        let mut all: Vec<&Tensor> = gradients.iter().collect();
        all.push(&values);
        self.group.all_reduce_sum(&all)?;
        let summed = Vec::<f32>::try_from(&values.to_device(tch::Device::Cpu))?;
        Ok(StepTotals { loss_sum: f64::from(summed[0]), correct: f64::from(summed[1]), interrupted: summed[2] > 0.0 })
    }
}

/// Rank `rank`'s slice of a batch of `size` samples split over `world` ranks.
fn replica_slice(size: usize, rank: usize, world: usize) -> Range<usize> {
    let (base, extra) = (size / world, size % world);
    let start = rank * base + rank.min(extra);
    start..start + base + usize::from(rank < extra)
}

#[cfg(test)]
mod tests {
    use super::replica_slice;

    #[test]
    fn slices_cover_a_batch_once_in_order() {
        let slices = |size, world| (0..world).map(|rank| replica_slice(size, rank, world)).collect::<Vec<_>>();
        assert_eq!(slices(8, 2), [0..4, 4..8]);
        assert_eq!(slices(5, 2), [0..3, 3..5]);
        assert_eq!(slices(1, 2), [0..1, 1..1]);
        assert_eq!(slices(7, 3), [0..3, 3..5, 5..7]);
    }
}
