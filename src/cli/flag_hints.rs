//! The flag that changes what an error refused: the library's errors name no command-line flag,
//! so the command line adds a `help:` line for the typed errors a flag can lift.

use keras_tch::Error;

/// The hint for `error` (anywhere in its chain of causes), if a flag is the way out of it.
pub fn flag_hint(error: &anyhow::Error) -> Option<&'static str> {
    error.chain().find_map(|cause| match cause.downcast_ref::<Error>()? {
        Error::ImageTooLarge { .. } => Some("raise the limit with --max-pixels"),
        Error::ClassIndexMissing { .. } => Some("pass Keras's imagenet_class_index.json with --class-index FILE"),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_are_found_under_added_context() {
        let missing = anyhow::Error::from(Error::ClassIndexMissing { searched: vec!["weights/x.json".into()] }).context("classify");
        assert!(flag_hint(&missing).is_some_and(|hint| hint.contains("--class-index")));
        assert_eq!(flag_hint(&anyhow::anyhow!("something else")), None);
    }
}
