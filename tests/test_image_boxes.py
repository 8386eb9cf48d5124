"""af.image's boxes, colour and geometry ops against TensorFlow 2.21 (the same program in its
side environment gave these sums, to 4 decimals, and the same NMS indices)."""

import numpy as np
import pytest

import actorflow as tf


def test_box_colour_geometry_ops_match_tensorflow():
    rng = np.random.RandomState(0)
    img = rng.rand(2, 6, 7, 3).astype(np.float32)
    boxes = np.float32([[0, 0, 1, 1], [0.1, 0.1, 1.0, 1.0], [0.5, 0.5, 0.9, 0.9],
                        [0, 0, 0.5, 0.5]])
    scores = np.float32([0.9, 0.8, 0.7, 0.95])
    with tf.Graph().as_default():
        out = [tf.image.crop_and_resize(img, [[0.1, 0.2, 0.8, 0.9], [-0.1, 0, 0.5, 1.2]],
                                        [1, 0], [3, 4]),
               tf.image.crop_and_resize(img, [[0.1, 0.2, 0.8, 0.9]], [0], [2, 2],
                                        method="nearest"),
               tf.image.rgb_to_hsv(img), tf.image.hsv_to_rgb(tf.image.rgb_to_hsv(img)),
               tf.image.adjust_saturation(img, 0.5), tf.image.adjust_hue(img, 0.2),
               tf.image.draw_bounding_boxes(img, [[[0.1, 0.1, 0.6, 0.8]], [[0, 0, 1, 1]]]),
               tf.image.rot90(img[0], 1), tf.image.total_variation(img),
               tf.image.pad_to_bounding_box(img, 1, 2, 8, 10),
               tf.image.crop_to_bounding_box(img, 1, 2, 3, 4)]
        nms = tf.image.non_max_suppression(boxes, scores, 3, 0.5)
        with tf.Session() as s:
            got = s.run(out)
            keep = s.run(nms)
    want = [26.8731, 5.626, 163.3392, 124.4065, 156.1957, 125.179, 142.2195, 63.4839,
            144.3591, 124.4065, 33.6899]
    shapes = [(2, 3, 4, 3), (1, 2, 2, 3), *[(2, 6, 7, 3)] * 5, (7, 6, 3), (2,), (2, 8, 10, 3),
              (2, 3, 4, 3)]
    for g, w, shp in zip(got, want, shapes, strict=True):
        assert np.shape(g) == shp
        assert np.asarray(g, np.float64).sum() == pytest.approx(w, abs=2e-4)
    np.testing.assert_allclose(got[3], img, atol=1e-6)  # HSV and back
    assert keep.tolist() == [3, 0, 2]
    with tf.Graph().as_default(), pytest.raises(tf.errors.InvalidArgumentError, match="float"):
        tf.image.rgb_to_hsv(np.zeros((2, 2, 3), np.uint8))


def test_crop_and_resize_gradients_match_finite_differences():
    """The image's and the boxes' gradients (they were missing: the op had no gradient, so a
    model training through crops learned nothing through them), against central differences
    of the op itself, boxes off the pixel centres (where the bilinear weights are smooth)."""
    rng = np.random.default_rng(5)
    img = rng.uniform(-1, 1, (2, 5, 6, 2)).astype(np.float32)
    boxes = np.float32([[0.13, 0.21, 0.77, 0.93], [-0.21, 0.07, 1.13, 0.71]])
    ind = np.int32([1, 0])
    w = rng.standard_normal((2, 3, 4, 2)).astype(np.float32)
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, img.shape)
        b = tf.placeholder(tf.float32, boxes.shape)
        loss = tf.reduce_sum(tf.image.crop_and_resize(x, b, ind, [3, 4],
                                                      extrapolation_value=0.5) * w)
        gx, gb = tf.gradients(loss, [x, b])
        with tf.Session() as s:
            feed = {x: img, b: boxes}
            gx_, gb_ = s.run([gx, gb], feed)
            for arr, got, ph in ((img, gx_, x), (boxes, gb_, b)):
                for idx in list(np.ndindex(arr.shape))[::7]:
                    up, dn = arr.copy(), arr.copy()
                    up[idx] += 1e-3
                    dn[idx] -= 1e-3
                    num = (s.run(loss, {**feed, ph: up}) - s.run(loss, {**feed, ph: dn})) / 2e-3
                    assert abs(got[idx] - num) < 2e-2 * max(1.0, abs(num)), (ph, idx, got[idx], num)
