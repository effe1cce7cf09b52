//! Least-squares trends over samples: whether the broker's memory keeps
//! growing once the load is steady.

/// Slope of the least-squares line through `points` (x, y), in y per x;
/// `None` with fewer than two distinct x.
pub fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mean_x = points.iter().map(|(x, _)| x).sum::<f64>() / n;
    let mean_y = points.iter().map(|(_, y)| y).sum::<f64>() / n;
    let (mut covariance, mut variance) = (0.0, 0.0);
    for (x, y) in points {
        covariance += (x - mean_x) * (y - mean_y);
        variance += (x - mean_x) * (x - mean_x);
    }
    // Equal x everywhere: no line through them has a slope.
    (variance > f64::EPSILON).then(|| covariance / variance)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_straight_line_gives_its_slope() {
        let points: Vec<(f64, f64)> = (0..5).map(|x| (x as f64, 3.0 + 0.5 * x as f64)).collect();
        assert!((slope(&points).unwrap() - 0.5).abs() < 1e-12);
    }

    #[test]
    fn noise_around_a_line_averages_out() {
        // 1, 3, 2, 4 at x = 0..4: the least-squares slope is 0.8, not the
        // 1.0 of the end points.
        let points = [(0.0, 1.0), (1.0, 3.0), (2.0, 2.0), (3.0, 4.0)];
        assert!((slope(&points).unwrap() - 0.8).abs() < 1e-12);
    }

    #[test]
    fn too_few_or_coincident_points_have_no_slope() {
        assert_eq!(slope(&[(1.0, 2.0)]), None);
        assert_eq!(slope(&[(1.0, 2.0), (1.0, 5.0)]), None);
    }
}
