//! Structure-aware edits of Keras HDF5 files, made with the `hdf5` crate: the result is a
//! well-formed HDF5 file, so the edit gets past libhdf5's own parsing (which raw byte edits
//! mostly exercise) into keras-tch's reading of the Keras layout: `layer_names` /
//! `weight_names` lists with missing, duplicate, path-like or oversized entries, attributes of
//! the wrong type, datasets of another shape or dtype, huge sparse datasets, links removed.

use std::path::Path;
use std::str::FromStr;

use anyhow::{Context, Result};
use hdf5::types::{FixedAscii, VarLenUnicode};
use hdf5::{Dataset, Group};

use super::dice::Dice;

/// `bytes` (an HDF5 file) with one structural edit, written through the staging file.
pub fn edit(dice: &mut Dice, bytes: &[u8], staging: &Path) -> Result<Vec<u8>> {
    std::fs::write(staging, bytes)?;
    {
        let file = hdf5::File::open_rw(staging)?;
        let mut groups = Vec::new();
        let mut datasets = Vec::new();
        walk(&file, &mut groups, &mut datasets)?;
        let listing: Vec<&Group> = groups.iter().filter(|g| has_list(g)).collect();
        let group = (!listing.is_empty()).then(|| *dice.pick(&listing));
        let dataset = (!datasets.is_empty()).then(|| dice.pick(&datasets));
        match (dice.below(4), group, dataset) {
            (0, Some(group), _) => edit_name_list(dice, group),
            (1, Some(group), _) => retype_name_list(dice, group),
            (2, _, Some(dataset)) => replace_dataset(dice, &file, dataset),
            (_, _, Some(_)) => unlink_something(dice, &file, &groups, &datasets),
            _ => Ok(()),
        }?;
    }
    Ok(std::fs::read(staging)?)
}

const LIST_ATTRIBUTES: &[&str] = &["layer_names", "weight_names"];

fn has_list(group: &Group) -> bool {
    LIST_ATTRIBUTES.iter().any(|name| group.attr(name).is_ok())
}

/// Every group (the root included) and dataset, depth first.
fn walk(group: &Group, groups: &mut Vec<Group>, datasets: &mut Vec<Dataset>) -> Result<()> {
    datasets.extend(group.datasets()?);
    for child in group.groups()? {
        walk(&child, groups, datasets)?;
    }
    groups.push(group.clone());
    Ok(())
}

/// Names a Keras list might hold, badly: empty, path-like, overlong, with a tensor suffix.
fn odd_name(dice: &mut Dice, names: &[String]) -> String {
    let other = if names.is_empty() { "x".to_string() } else { dice.pick(names).clone() };
    match dice.below(8) {
        0 => String::new(),
        1 => "..".into(),
        2 => "/".into(),
        3 => format!("../{other}"),
        4 => format!("{other}/{other}"),
        5 => format!("{other}:0"),
        6 => "x".repeat(dice.small_len(5000)),
        _ => other,
    }
}

/// Drop, duplicate, swap or rename entries of `layer_names` / `weight_names`.
fn edit_name_list(dice: &mut Dice, group: &Group) -> Result<()> {
    let name = *dice.pick(&LIST_ATTRIBUTES.iter().copied().filter(|n| group.attr(n).is_ok()).collect::<Vec<_>>());
    let mut names = keras_tch::io::hdf5_text::read_string_list(&*group.attr(name)?).unwrap_or_default();
    let (i, j) = (dice.below(names.len()), dice.below(names.len()));
    match dice.below(5) {
        _ if names.is_empty() => names.push(odd_name(dice, &[])),
        0 => drop(names.remove(i)),
        1 => names.insert(i, names[i].clone()),
        2 => names.swap(i, j),
        3 => names.clear(),
        _ => names[i] = odd_name(dice, &names.clone()),
    }
    let values = names.iter().map(|n| VarLenUnicode::from_str(n)).collect::<Result<Vec<_>, _>>().map_err(|e| anyhow::anyhow!("{e}"))?;
    group.delete_attr(name)?;
    group.new_attr::<VarLenUnicode>().shape([values.len()]).create(name)?.write_raw(&values)?;
    Ok(())
}

/// Replace a name list by an attribute of another type: integers, floats, a scalar string,
/// or fixed-length strings.
fn retype_name_list(dice: &mut Dice, group: &Group) -> Result<()> {
    let name = *dice.pick(&LIST_ATTRIBUTES.iter().copied().filter(|n| group.attr(n).is_ok()).collect::<Vec<_>>());
    let len = dice.below(4);
    group.delete_attr(name)?;
    match dice.below(4) {
        0 => group.new_attr::<i64>().shape([len]).create(name)?.write_raw(&vec![-1i64; len])?,
        1 => group.new_attr::<f64>().shape([len]).create(name)?.write_raw(&vec![0.5f64; len])?,
        2 => group.new_attr::<VarLenUnicode>().shape(()).create(name)?.write_scalar(&VarLenUnicode::from_str("dense").unwrap())?,
        _ => {
            let value = FixedAscii::<16>::from_ascii(b"conv2d/kernel:0").unwrap();
            group.new_attr::<FixedAscii<16>>().shape([len]).create(name)?.write_raw(&vec![value; len])?
        }
    }
    Ok(())
}

/// Put a dataset of another shape or type where a weight was: off-by-one and empty
/// dimensions, a scalar, another dtype, or a huge chunked dataset that takes no space on disk.
fn replace_dataset(dice: &mut Dice, file: &hdf5::File, dataset: &Dataset) -> Result<()> {
    let path = dataset.name();
    let (parent, leaf) = path.rsplit_once('/').context("a dataset path")?;
    let group = file.group(if parent.is_empty() { "/" } else { parent })?;
    let mut shape = dataset.shape();
    match dice.below(5) {
        0 if !shape.is_empty() => {
            let axis = dice.below(shape.len());
            shape[axis] = *dice.pick(&[0, 1, shape[axis].saturating_sub(1), shape[axis] + 1, 7]);
        }
        1 => shape = (0..dice.below(5)).map(|_| *dice.pick(&[0usize, 1, 2, 3, 64])).collect(),
        2 => shape.clear(),
        3 => {
            group.unlink(leaf)?;
            let builder = group.new_dataset::<f32>().shape([1usize << 12, 1 << 12]).chunk([64, 64]);
            let builder = if dice.chance(50) { builder.deflate(1) } else { builder };
            builder.create(leaf)?;
            return Ok(());
        }
        _ => {}
    }
    let values = shape.iter().product::<usize>();
    group.unlink(leaf)?;
    match dice.below(4) {
        0 => group.new_dataset::<f64>().shape(shape).create(leaf)?.write_raw(&vec![0.25f64; values])?,
        1 => group.new_dataset::<i64>().shape(shape).create(leaf)?.write_raw(&vec![3i64; values])?,
        2 => group.new_dataset::<u8>().shape(shape).create(leaf)?.write_raw(&vec![1u8; values])?,
        _ => group.new_dataset::<f32>().shape(shape).create(leaf)?.write_raw(&vec![f32::NAN; values])?,
    }
    Ok(())
}

/// Remove a dataset or a whole group that the name lists still mention.
fn unlink_something(dice: &mut Dice, file: &hdf5::File, groups: &[Group], datasets: &[Dataset]) -> Result<()> {
    let path = if dice.chance(50) || groups.len() < 2 { dice.pick(datasets).name() } else { dice.pick(&groups[..groups.len() - 1]).name() };
    file.unlink(&path)?;
    Ok(())
}
