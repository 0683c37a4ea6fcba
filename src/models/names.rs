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
