//! Keras's callbacks and learning-rate schedules on the command line, with Keras's argument
//! names: `--early-stopping patience=3,restore_best_weights=True`,
//! `--model-checkpoint 'runs/w.{epoch:02d}-{val_loss:.2f}.h5,save_best_only=True'`,
//! `--reduce-lr-on-plateau factor=0.5,patience=2`,
//! `--lr-schedule 'CosineDecay:decay_steps=1000,warmup_target=0.01,warmup_steps=100'`.
//! Values are written as in Python (`True`, `None`, `[100, 200]`); what is not given takes
//! Keras's default.

use anyhow::{bail, Context, Result};
use clap::Args;

use keras_tch::train::callbacks::{CallbackConfig, EarlyStoppingConfig, Mode, ModelCheckpointConfig, ReduceLROnPlateauConfig};
use keras_tch::train::schedules::LearningRateSchedule;

#[derive(Args, Debug)]
pub struct CallbackArgs {
    /// Keras's EarlyStopping: stop when the monitored value stops improving. Arguments (Keras's
    /// names and defaults): monitor=val_loss, min_delta=0, patience=0, verbose=0, mode=auto,
    /// baseline=None, restore_best_weights=False, start_from_epoch=0
    #[arg(long, value_name = "ARGS", num_args = 0..=1, default_missing_value = "")]
    pub early_stopping: Option<String>,
    /// Keras's ModelCheckpoint: FILEPATH (formatted as Python formats it, e.g.
    /// runs/w.{epoch:02d}-{val_loss:.2f}.h5; .keras, .h5, or with save_weights_only=True
    /// .weights.h5 / .h5), then monitor=val_loss, verbose=0, save_best_only=False,
    /// save_weights_only=False, mode=auto, initial_value_threshold=None
    #[arg(long, value_name = "FILEPATH[,ARGS]")]
    pub model_checkpoint: Option<String>,
    /// Keras's ReduceLROnPlateau: monitor=val_loss, factor=0.1, patience=10, verbose=0,
    /// mode=auto, min_delta=0.0001, cooldown=0, min_lr=0
    #[arg(long, value_name = "ARGS", num_args = 0..=1, default_missing_value = "")]
    pub reduce_lr_on_plateau: Option<String>,
    /// A Keras learning-rate schedule, CLASS:ARGS, its initial_learning_rate defaulting to --lr:
    /// ExponentialDecay:decay_steps=N,decay_rate=R[,staircase=True];
    /// PiecewiseConstantDecay:boundaries=[B1, B2],values=[V0, V1, V2];
    /// CosineDecay:decay_steps=N[,alpha=0.0,warmup_target=T,warmup_steps=W]
    #[arg(long, value_name = "CLASS:ARGS")]
    pub lr_schedule: Option<String>,
}

impl CallbackArgs {
    /// The callbacks asked for, in Keras's usual order.
    pub fn callbacks(&self) -> Result<Vec<CallbackConfig>> {
        let mut callbacks = Vec::new();
        if let Some(text) = &self.model_checkpoint {
            callbacks.push(CallbackConfig::ModelCheckpoint(model_checkpoint(text).context("--model-checkpoint")?));
        }
        if let Some(text) = &self.early_stopping {
            callbacks.push(CallbackConfig::EarlyStopping(early_stopping(text).context("--early-stopping")?));
        }
        if let Some(text) = &self.reduce_lr_on_plateau {
            callbacks.push(CallbackConfig::ReduceLROnPlateau(reduce_lr_on_plateau(text).context("--reduce-lr-on-plateau")?));
        }
        Ok(callbacks)
    }

    /// The schedule asked for, starting at `learning_rate` unless it says otherwise.
    pub fn schedule(&self, learning_rate: f64) -> Result<Option<LearningRateSchedule>> {
        self.lr_schedule.as_deref().map(|text| schedule(text, learning_rate).context("--lr-schedule")).transpose()
    }
}

/// A Python literal as Keras's arguments take them.
#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Number(f64),
    Bool(bool),
    None,
    List(Vec<f64>),
    Text(String),
}

/// Keyword arguments by name, in the order given.
type Keywords = Vec<(String, Literal)>;

/// `key=value` pairs separated by commas (commas inside `[...]` belong to the list); a first
/// item without `=` is returned as the positional argument.
fn parse_arguments(text: &str) -> Result<(Option<String>, Keywords)> {
    let mut items = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&text[start..]);
    let mut positional = None;
    let mut pairs = Vec::new();
    for (index, item) in items.iter().map(|i| i.trim()).filter(|i| !i.is_empty()).enumerate() {
        match item.split_once('=') {
            Some((key, value)) => pairs.push((key.trim().to_string(), literal(value.trim())?)),
            None if index == 0 => positional = Some(item.to_string()),
            None => bail!("'{item}' is not key=value"),
        }
    }
    Ok((positional, pairs))
}

fn literal(text: &str) -> Result<Literal> {
    Ok(match text {
        "True" | "true" => Literal::Bool(true),
        "False" | "false" => Literal::Bool(false),
        "None" | "none" => Literal::None,
        _ if text.starts_with('[') && text.ends_with(']') => Literal::List(
            text[1..text.len() - 1]
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(|v| v.parse::<f64>().with_context(|| format!("'{v}' in {text} is not a number")))
                .collect::<Result<_>>()?,
        ),
        _ => match text.parse::<f64>() {
            Ok(number) => Literal::Number(number),
            Err(_) => Literal::Text(text.trim_matches(|c| c == '\'' || c == '"').to_string()),
        },
    })
}

/// Typed access to the parsed arguments, refusing unknown names as Keras's constructors do.
struct Arguments {
    pairs: Keywords,
}

impl Arguments {
    fn new(pairs: Keywords, known: &[&str]) -> Result<Self> {
        for (key, _) in &pairs {
            if !known.contains(&key.as_str()) {
                bail!("unknown argument '{key}' (the arguments are: {})", known.join(", "));
            }
        }
        Ok(Self { pairs })
    }

    fn get(&self, key: &str) -> Option<&Literal> {
        self.pairs.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn number(&self, key: &str, default: f64) -> Result<f64> {
        match self.get(key) {
            None => Ok(default),
            Some(Literal::Number(n)) => Ok(*n),
            Some(other) => bail!("{key} must be a number, got {other:?}"),
        }
    }

    fn optional_number(&self, key: &str) -> Result<Option<f64>> {
        match self.get(key) {
            None | Some(Literal::None) => Ok(None),
            Some(Literal::Number(n)) => Ok(Some(*n)),
            Some(other) => bail!("{key} must be a number or None, got {other:?}"),
        }
    }

    fn count(&self, key: &str, default: usize) -> Result<usize> {
        let value = self.number(key, default as f64)?;
        if value < 0.0 || value.fract() != 0.0 {
            bail!("{key} must be a whole number, at least 0, got {value}");
        }
        Ok(value as usize)
    }

    fn flag(&self, key: &str, default: bool) -> Result<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(Literal::Bool(b)) => Ok(*b),
            Some(other) => bail!("{key} must be True or False, got {other:?}"),
        }
    }

    fn text(&self, key: &str, default: &str) -> Result<String> {
        match self.get(key) {
            None => Ok(default.to_string()),
            Some(Literal::Text(t)) => Ok(t.clone()),
            Some(other) => bail!("{key} must be a name, got {other:?}"),
        }
    }

    fn list(&self, key: &str) -> Result<Vec<f64>> {
        match self.get(key) {
            Some(Literal::List(values)) => Ok(values.clone()),
            None => bail!("{key} is required"),
            Some(other) => bail!("{key} must be a list like [1, 2], got {other:?}"),
        }
    }

    fn mode(&self) -> Result<Mode> {
        Mode::parse(&self.text("mode", "auto")?)
    }
}

fn no_positional(positional: Option<String>) -> Result<()> {
    match positional {
        Some(item) => bail!("'{item}' is not key=value"),
        None => Ok(()),
    }
}

fn early_stopping(text: &str) -> Result<EarlyStoppingConfig> {
    let (positional, pairs) = parse_arguments(text)?;
    no_positional(positional)?;
    let known = ["monitor", "min_delta", "patience", "verbose", "mode", "baseline", "restore_best_weights", "start_from_epoch"];
    let args = Arguments::new(pairs, &known)?;
    let defaults = EarlyStoppingConfig::default();
    Ok(EarlyStoppingConfig {
        monitor: args.text("monitor", &defaults.monitor)?,
        min_delta: args.number("min_delta", defaults.min_delta)?,
        patience: args.count("patience", defaults.patience)?,
        verbose: args.count("verbose", 0)?.min(2) as u8,
        mode: args.mode()?,
        baseline: args.optional_number("baseline")?,
        restore_best_weights: args.flag("restore_best_weights", defaults.restore_best_weights)?,
        start_from_epoch: args.count("start_from_epoch", defaults.start_from_epoch)?,
    })
}

fn model_checkpoint(text: &str) -> Result<ModelCheckpointConfig> {
    let (positional, pairs) = parse_arguments(text)?;
    let known = ["filepath", "monitor", "verbose", "save_best_only", "save_weights_only", "mode", "initial_value_threshold"];
    let args = Arguments::new(pairs, &known)?;
    let filepath = match (positional, args.get("filepath")) {
        (Some(path), None) => path,
        (None, Some(Literal::Text(path))) => path.clone(),
        (Some(_), Some(_)) => bail!("the file path is given twice"),
        _ => bail!("a file path is required, e.g. 'runs/w.{{epoch:02d}}.h5'"),
    };
    let defaults = ModelCheckpointConfig::new(&filepath);
    Ok(ModelCheckpointConfig {
        monitor: args.text("monitor", &defaults.monitor)?,
        verbose: args.count("verbose", 0)?.min(2) as u8,
        save_best_only: args.flag("save_best_only", false)?,
        save_weights_only: args.flag("save_weights_only", false)?,
        mode: args.mode()?,
        initial_value_threshold: args.optional_number("initial_value_threshold")?,
        ..defaults
    })
}

fn reduce_lr_on_plateau(text: &str) -> Result<ReduceLROnPlateauConfig> {
    let (positional, pairs) = parse_arguments(text)?;
    no_positional(positional)?;
    let known = ["monitor", "factor", "patience", "verbose", "mode", "min_delta", "cooldown", "min_lr"];
    let args = Arguments::new(pairs, &known)?;
    let defaults = ReduceLROnPlateauConfig::default();
    Ok(ReduceLROnPlateauConfig {
        monitor: args.text("monitor", &defaults.monitor)?,
        factor: args.number("factor", defaults.factor)?,
        patience: args.count("patience", defaults.patience)?,
        verbose: args.count("verbose", 0)?.min(2) as u8,
        mode: args.mode()?,
        min_delta: args.number("min_delta", defaults.min_delta)?,
        cooldown: args.count("cooldown", defaults.cooldown)?,
        min_lr: args.number("min_lr", defaults.min_lr)?,
    })
}

fn schedule(text: &str, learning_rate: f64) -> Result<LearningRateSchedule> {
    let (class, rest) = text.split_once(':').unwrap_or((text, ""));
    let (positional, pairs) = parse_arguments(rest)?;
    no_positional(positional)?;
    let schedule = match class.trim() {
        "ExponentialDecay" => {
            let args = Arguments::new(pairs, &["initial_learning_rate", "decay_steps", "decay_rate", "staircase"])?;
            LearningRateSchedule::ExponentialDecay {
                initial_learning_rate: args.number("initial_learning_rate", learning_rate)?,
                decay_steps: args.optional_number("decay_steps")?.context("decay_steps is required")?,
                decay_rate: args.optional_number("decay_rate")?.context("decay_rate is required")?,
                staircase: args.flag("staircase", false)?,
            }
        }
        "PiecewiseConstantDecay" => {
            let args = Arguments::new(pairs, &["boundaries", "values"])?;
            LearningRateSchedule::PiecewiseConstantDecay { boundaries: args.list("boundaries")?, values: args.list("values")? }
        }
        "CosineDecay" => {
            let args = Arguments::new(pairs, &["initial_learning_rate", "decay_steps", "alpha", "warmup_target", "warmup_steps"])?;
            LearningRateSchedule::CosineDecay {
                initial_learning_rate: args.number("initial_learning_rate", learning_rate)?,
                decay_steps: args.optional_number("decay_steps")?.context("decay_steps is required")?,
                alpha: args.number("alpha", 0.0)?,
                warmup_target: args.optional_number("warmup_target")?,
                warmup_steps: args.number("warmup_steps", 0.0)?,
            }
        }
        other => bail!("unknown schedule '{other}' (ExponentialDecay, PiecewiseConstantDecay, CosineDecay)"),
    };
    schedule.validated()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keras_arguments_parse_with_keras_defaults() {
        let config = early_stopping("patience=3, restore_best_weights=True, baseline=None").unwrap();
        assert_eq!((config.patience, config.restore_best_weights, config.baseline), (3, true, None));
        assert_eq!(config.monitor, "val_loss");
        let checkpoint = model_checkpoint("runs/w.{epoch:02d}-{val_loss:.2f}.h5,save_best_only=True").unwrap();
        assert_eq!((checkpoint.filepath.as_str(), checkpoint.save_best_only), ("runs/w.{epoch:02d}-{val_loss:.2f}.h5", true));
        let error = format!("{:#}", early_stopping("patiance=3").unwrap_err());
        assert!(error.contains("unknown argument 'patiance'") && error.contains("patience"), "{error}");
        let piecewise = schedule("PiecewiseConstantDecay:boundaries=[10, 20],values=[1.0, 0.5, 0.1]", 1e-3).unwrap();
        assert_eq!(piecewise, LearningRateSchedule::PiecewiseConstantDecay { boundaries: vec![10.0, 20.0], values: vec![1.0, 0.5, 0.1] });
        assert!(schedule("CosineDecay:alpha=0.1", 1e-3).is_err(), "decay_steps is required");
    }
}
