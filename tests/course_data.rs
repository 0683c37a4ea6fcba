//! The course's HDF5 datasets: the real files in ../shared/data read as the notebooks read them,
//! and bad files rejected with errors that name the file and the dataset.

mod common;

use std::path::Path;

use common::{keras_fixture, max_abs_diff, read_f32, scratch_dir, shared_data};
use keras_tch::data::course::{load_dataset, load_split};
use tch::Tensor;

fn to_vec(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(t.contiguous().flatten(0, -1)).unwrap()
}

/// `X_test_orig / 255.` and `convert_to_one_hot(Y_test_orig, 6).T` as numpy computed them.
#[test]
fn signs_test_set_matches_the_notebook_helpers() {
    let (Some(file), Some(fixture)) = (shared_data("test_signs.h5"), keras_fixture("course_signs")) else {
        return;
    };
    let (split, classes) = load_split(&file, "test").unwrap();
    assert_eq!(classes, ["0", "1", "2", "3", "4", "5"]);
    assert_eq!(split.x.shape(), [120, 64, 64, 3]);

    let io = fixture.join("io.h5");
    let x = split.normalized_images();
    let (expected_means, _) = read_f32(&io, "per_image_mean");
    let means = to_vec(&x.reshape([120, -1]).mean_dim(1, false, tch::Kind::Float));
    assert!(max_abs_diff(&means, &expected_means) < 1e-6);

    let (expected_one_hot, shape) = read_f32(&io, "one_hot");
    assert_eq!(shape, [120, 6]);
    assert_eq!(to_vec(&split.one_hot_labels(6)), expected_one_hot);
}

/// The cat/non-cat files store `list_classes` as fixed-length byte strings.
#[test]
fn catvnoncat_class_names_are_fixed_length_strings() {
    let (Some(train), Some(test)) = (shared_data("train_catvnoncat.h5"), shared_data("test_catvnoncat.h5")) else {
        return;
    };
    let data = load_dataset(&train, &test).unwrap();
    assert_eq!(data.classes, ["non-cat", "cat"]);
    assert_eq!(data.train.x.shape(), [209, 64, 64, 3]);
    assert_eq!(data.test.len(), 50);
    assert!(data.train.y.iter().all(|&y| y == 0 || y == 1));
}

/// Write a small course-layout file with the given pieces, for the error tests.
fn write_course_file(path: &Path, x: Option<&[usize]>, y: &[i64], y_row: bool, x_float: bool) {
    let file = hdf5::File::create(path).unwrap();
    if let Some(shape) = x {
        let count: usize = shape.iter().product();
        if x_float {
            file.new_dataset::<f32>().shape(shape).create("train_set_x").unwrap().write_raw(&vec![0f32; count]).unwrap();
        } else {
            file.new_dataset::<u8>().shape(shape).create("train_set_x").unwrap().write_raw(&vec![7u8; count]).unwrap();
        }
    }
    let y_shape = if y_row { vec![1, y.len()] } else { vec![y.len()] };
    file.new_dataset::<i64>().shape(y_shape).create("train_set_y").unwrap().write_raw(y).unwrap();
    file.new_dataset::<i64>().shape([3]).create("list_classes").unwrap().write_raw(&[0i64, 1, 2]).unwrap();
}

fn error_of(path: &Path) -> String {
    format!("{:#}", load_split(path, "train").unwrap_err())
}

#[test]
fn labels_stored_as_a_row_are_read_like_a_vector() {
    let dir = scratch_dir("row-labels");
    let path = dir.join("row.h5");
    write_course_file(&path, Some(&[2, 4, 4, 3]), &[2, 0], true, false);
    let (split, _) = load_split(&path, "train").unwrap();
    assert_eq!(split.y.to_vec(), [2, 0]);
}

#[test]
fn bad_course_files_are_rejected_naming_file_and_dataset() {
    let dir = scratch_dir("bad-course");
    // (file, image shape, labels, float images, expected message)
    type Case<'a> = (&'a str, Option<&'a [usize]>, &'a [i64], bool, &'a str);
    let cases: [Case; 4] = [
        ("missing.h5", None, &[0, 1], false, "'train_set_x' is missing"),
        ("float.h5", Some(&[2, 4, 4, 3]), &[0, 1], true, "expected uint8 images"),
        ("count.h5", Some(&[3, 4, 4, 3]), &[0, 1], false, "holds 2 labels but train_set_x holds 3 images"),
        ("range.h5", Some(&[2, 4, 4, 3]), &[0, 3], false, "label 3 at index 1 is outside 0..3"),
    ];
    for (name, x_shape, labels, x_float, expected) in cases {
        let path = dir.join(name);
        write_course_file(&path, x_shape, labels, false, x_float);
        let err = error_of(&path);
        assert!(err.contains(expected), "{name}: {err}");
        assert!(err.contains(&path.display().to_string()), "{name} does not name the file: {err}");
    }

    let rank = dir.join("rank.h5");
    write_course_file(&rank, Some(&[2, 48]), &[0, 1], false, false);
    let err = error_of(&rank);
    assert!(err.contains("dataset 'train_set_x'") && err.contains("rank 4"), "{err}");

    let not_hdf5 = dir.join("text.h5");
    std::fs::write(&not_hdf5, "not an HDF5 file").unwrap();
    let err = error_of(&not_hdf5);
    assert!(err.contains("cannot open") && err.contains("text.h5"), "{err}");
}
