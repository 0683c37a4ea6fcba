//! Keras's layer names, produced in one place and used for building, importing, exporting,
//! freezing and printing.

/// Course / keras-applications ≤ 1.0.8 convolution: `res2a_branch2a`, `res3b_branch1`.
pub fn course_conv(stage: usize, block: char, branch: &str) -> String {
    format!("res{stage}{block}_branch{branch}")
}

/// Course / keras-applications ≤ 1.0.8 BatchNorm: `bn2a_branch2a`.
pub fn course_bn(stage: usize, block: char, branch: &str) -> String {
    format!("bn{stage}{block}_branch{branch}")
}

/// Letter of the `index`-th block of a stage (0 -> 'a').
pub fn block_letter(index: usize) -> char {
    (b'a' + index as u8) as char
}

/// Keras ≥ 2.2.5 / Keras 3 ResNet layer: `conv2_block1_1_conv`, `conv5_block3_out`.
pub fn keras_block(stage: usize, block: usize, part: &str) -> String {
    format!("conv{stage}_block{block}_{part}")
}

/// Flattened name of a layer inside the TF2 tutorial's subclassed ResNet18/34:
/// `layer2_block1_conv1` for `self.layer2` → first `BasicBlock` → `conv1`.
pub fn basic_block(stage: usize, block: usize, part: &str) -> String {
    format!("layer{stage}_block{block}_{part}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_keras_names() {
        assert_eq!(course_conv(2, 'a', "2a"), "res2a_branch2a");
        assert_eq!(course_bn(4, block_letter(5), "2c"), "bn4f_branch2c");
        assert_eq!(keras_block(3, 4, "0_bn"), "conv3_block4_0_bn");
        assert_eq!(basic_block(1, 2, "downsample"), "layer1_block2_downsample");
    }
}

/// Every weighted layer of ResNet50 under both checkpoint schemes:
/// (keras-applications ≤ 1.0.8 name, Keras ≥ 2.2.5 name), e.g. (`res2a_branch2a`,
/// `conv2_block1_1_conv`), (`bn2a_branch1`, `conv2_block1_0_bn`), (`fc1000`, `predictions`).
pub fn resnet50_name_pairs() -> Vec<(String, String)> {
    let mut pairs = vec![
        ("conv1".to_string(), "conv1_conv".to_string()),
        ("bn_conv1".to_string(), "conv1_bn".to_string()),
        ("fc1000".to_string(), "predictions".to_string()),
    ];
    // Course branch -> Keras part number: the shortcut is part 0, the main path 1-3.
    const BRANCHES: [(&str, &str); 4] = [("1", "0"), ("2a", "1"), ("2b", "2"), ("2c", "3")];
    for spec in crate::models::course::RESNET50_STAGES {
        for index in 0..spec.blocks {
            let letter = block_letter(index);
            for (branch, part) in BRANCHES {
                if branch == "1" && index > 0 {
                    continue; // only the first block of a stage has a projection shortcut
                }
                pairs.push((course_conv(spec.stage, letter, branch), keras_block(spec.stage, index + 1, &format!("{part}_conv"))));
                pairs.push((course_bn(spec.stage, letter, branch), keras_block(spec.stage, index + 1, &format!("{part}_bn"))));
            }
        }
    }
    pairs
}

#[cfg(test)]
mod pair_tests {
    use super::*;

    #[test]
    fn resnet50_schemes_pair_every_weighted_layer() {
        let pairs = resnet50_name_pairs();
        // 53 convolutions, 53 BatchNorms, one Dense.
        assert_eq!(pairs.len(), 107);
        assert!(pairs.contains(&("res2a_branch2a".into(), "conv2_block1_1_conv".into())));
        assert!(pairs.contains(&("bn2a_branch1".into(), "conv2_block1_0_bn".into())));
        assert!(pairs.contains(&("res5c_branch2c".into(), "conv5_block3_3_conv".into())));
        assert!(pairs.contains(&("bn4f_branch2b".into(), "conv4_block6_2_bn".into())));
    }
}
