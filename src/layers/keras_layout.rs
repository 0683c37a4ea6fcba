//! The one place where Keras's weight layouts meet torch's.
//!
//! Keras stores conv kernels as HWIO (`kernel_size + (in, out)`) and dense kernels as (in, out);
//! torch's conv2d wants OIHW and `linear` wants (out, in). BatchNorm vectors and biases are the
//! same in both.

use tch::Tensor;

/// How a weight's torch layout relates to Keras's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Same layout in both (biases, BatchNorm vectors).
    Same,
    /// Conv kernel: Keras HWIO, torch OIHW.
    ConvKernel,
    /// Dense kernel: Keras (in, out), torch (out, in).
    DenseKernel,
}

impl Layout {
    /// Keras's shape for a torch tensor of shape `torch_shape`.
    pub fn keras_shape(self, torch_shape: &[i64]) -> Vec<i64> {
        match (self, torch_shape) {
            (Layout::ConvKernel, &[o, i, h, w]) => vec![h, w, i, o],
            (Layout::DenseKernel, &[o, i]) => vec![i, o],
            _ => torch_shape.to_vec(),
        }
    }

    /// A Keras-layout tensor in torch's layout (contiguous).
    pub fn from_keras(self, keras: &Tensor) -> Tensor {
        match self {
            Layout::Same => keras.shallow_clone(),
            Layout::ConvKernel => keras.permute([3, 2, 0, 1]),
            Layout::DenseKernel => keras.tr(),
        }
        .contiguous()
    }

    /// A torch-layout tensor in Keras's layout: a new tensor, detached from the variable.
    pub fn to_keras(self, torch: &Tensor) -> Tensor {
        tch::no_grad(|| {
            let keras = match self {
                Layout::Same => torch.shallow_clone(),
                Layout::ConvKernel => torch.permute([2, 3, 1, 0]).contiguous(),
                Layout::DenseKernel => torch.tr().contiguous(),
            };
            // A permutation that moves only size-1 axes is already contiguous and would alias.
            if keras.data_ptr() == torch.data_ptr() {
                keras.copy()
            } else {
                keras
            }
        })
        .detach()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conv_kernel_hwio_to_oihw_moves_each_element() {
        // HWIO shape (2, 3, 4, 5); element [h, w, i, o] = h*1000 + w*100 + i*10 + o.
        let keras = Tensor::from_slice(
            &(0..120)
                .map(|n| {
                    let (h, w, i, o) = (n / 60, (n / 20) % 3, (n / 5) % 4, n % 5);
                    (h * 1000 + w * 100 + i * 10 + o) as f32
                })
                .collect::<Vec<_>>(),
        )
        .reshape([2, 3, 4, 5]);
        let torch = Layout::ConvKernel.from_keras(&keras);
        assert_eq!(torch.size(), [5, 4, 2, 3]);
        assert_eq!(torch.double_value(&[4, 3, 1, 2]), 1234.0);
        assert_eq!(Layout::ConvKernel.keras_shape(&torch.size()), [2, 3, 4, 5]);
        assert!(Layout::ConvKernel.to_keras(&torch).equal(&keras));
    }

    #[test]
    fn dense_kernel_in_out_to_out_in() {
        let keras = Tensor::from_slice(&[1f32, 2., 3., 4., 5., 6.]).reshape([3, 2]);
        let torch = Layout::DenseKernel.from_keras(&keras);
        assert_eq!(torch.size(), [2, 3]);
        assert_eq!(torch.double_value(&[1, 0]), 2.0);
        assert!(Layout::DenseKernel.to_keras(&torch).equal(&keras));
        assert_eq!(Layout::Same.keras_shape(&[7]), [7]);
    }

    #[test]
    fn keras_copies_never_alias_the_variable() {
        // (out=1, in=3): its transpose is contiguous as it is.
        for (layout, torch) in
            [(Layout::DenseKernel, Tensor::ones([1, 3], tch::kind::FLOAT_CPU)), (Layout::Same, Tensor::ones([3], tch::kind::FLOAT_CPU))]
        {
            let keras = layout.to_keras(&torch);
            let _ = torch.shallow_clone().fill_(5.0);
            assert_eq!(keras.double_value(&[0]), 1.0, "{layout:?} aliased the variable");
        }
    }
}
