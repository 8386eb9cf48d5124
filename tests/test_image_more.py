"""tf.image functions added or fixed in session 9 (s9api): colour spaces, gamma, image
gradients, Sobel, PSNR, SSIM, resize_image_with_pad, central_crop, convert_image_dtype's
saturation and sample_distorted_bounding_box's constraints. NumPy references written here;
gradients by central differences."""

# the lambdas are called at once, inside their loop (B023)
# ruff: noqa: B023

import numpy as np
import pytest

import actorflow as af
from devices.errors import InvalidArgumentError
from tests.opcheck import check_forward, check_gradient, run_op

R = np.random.default_rng(5)
IM = R.uniform(0, 1, (2, 6, 7, 3))


def test_yuv_yiq_round_trip_and_luma():
    for fwd, back in ((af.image.rgb_to_yuv, af.image.yuv_to_rgb),
                      (af.image.rgb_to_yiq, af.image.yiq_to_rgb)):
        y, rgb = run_op(lambda a: [fwd(a), back(fwd(a))], [IM])
        np.testing.assert_allclose(rgb, IM, atol=2e-4)  # TF's matrices are inverse to ~1e-4
        np.testing.assert_allclose(y[..., 0], IM @ [0.299, 0.587, 0.114], rtol=1e-7)
    grey = np.repeat(IM[..., :1], 3, -1)  # grey has no chroma
    np.testing.assert_allclose(run_op(af.image.rgb_to_yuv, [grey])[..., 1:], 0, atol=1e-7)
    check_gradient(af.image.rgb_to_yuv, [IM[:1, :2, :2]], seed=1)


def test_gamma_gradients_sobel():
    check_forward(lambda a: af.image.adjust_gamma(a, 2.0, 1.5), lambda a: 1.5 * a ** 2, [IM])
    check_gradient(lambda a: af.image.adjust_gamma(a, 2.0, 1.5), [IM[:1, :2]], seed=2)
    u8 = np.uint8([[[[0, 128, 255]]]])
    got = run_op(lambda a: af.image.adjust_gamma(a, 0.5), [u8])
    assert got.dtype == np.uint8 and got.tolist() == [[[[0, 181, 255]]]]

    def np_grad(a):
        dy, dx = np.zeros_like(a), np.zeros_like(a)
        dy[:, :-1] = a[:, 1:] - a[:, :-1]
        dx[:, :, :-1] = a[:, :, 1:] - a[:, :, :-1]
        return [dy, dx]
    check_forward(lambda a: list(af.image.image_gradients(a)), np_grad, [IM])

    def np_sobel(a):
        p = np.pad(a, [(0, 0), (1, 1), (1, 1), (0, 0)], mode="reflect")
        ky = np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]])
        out = np.zeros((*a.shape, 2))
        for i in range(a.shape[1]):
            for j in range(a.shape[2]):
                win = p[:, i:i + 3, j:j + 3]
                out[:, i, j, :, 0] = np.einsum("bhwc,hw->bc", win, ky)
                out[:, i, j, :, 1] = np.einsum("bhwc,hw->bc", win, ky.T)
        return out
    check_forward(af.image.sobel_edges, np_sobel, [IM], rtol=1e-9, atol=1e-9)
    check_gradient(af.image.sobel_edges, [IM[:1, :3, :4, :2]], seed=3)


def test_psnr_and_ssim():
    b = np.clip(IM + R.normal(0, 0.05, IM.shape), 0, 1)
    got = run_op(lambda x, y: af.image.psnr(x, y, 1.0), [IM.astype(np.float32),
                                                          b.astype(np.float32)])
    mse = ((IM - b) ** 2).mean((1, 2, 3))
    np.testing.assert_allclose(got, 10 * np.log10(1 / mse), rtol=1e-5)
    x = R.uniform(0, 1, (2, 16, 13, 2)).astype(np.float32)
    y = np.clip(x + R.normal(0, 0.1, x.shape), 0, 1).astype(np.float32)
    same, diff = run_op(lambda a, c: [af.image.ssim(a, a, 1.0), af.image.ssim(a, c, 1.0)], [x, y])
    np.testing.assert_allclose(same, 1.0, rtol=1e-5)

    def np_ssim(a, c):  # Gaussian-weighted local statistics, VALID windows
        g = np.exp(-0.5 * (np.arange(11) - 5.0) ** 2 / 1.5 ** 2)
        k = np.outer(g, g) / np.outer(g, g).sum()

        def filt(t):
            h, w = t.shape[1] - 10, t.shape[2] - 10
            return np.stack([[np.einsum("bhwc,hw->bc", t[:, i:i + 11, j:j + 11], k)
                              for j in range(w)] for i in range(h)], 1).transpose(2, 0, 1, 3)
        m1, m2 = filt(a), filt(c)
        s11, s22, s12 = filt(a * a) - m1 ** 2, filt(c * c) - m2 ** 2, filt(a * c) - m1 * m2
        c1, c2 = 0.01 ** 2, 0.03 ** 2
        s = ((2 * m1 * m2 + c1) * (2 * s12 + c2)) / ((m1 ** 2 + m2 ** 2 + c1) * (s11 + s22 + c2))
        return s.mean((1, 2, 3))
    np.testing.assert_allclose(diff, np_ssim(x.astype(np.float64), y.astype(np.float64)),
                               rtol=1e-4)
    with pytest.raises(InvalidArgumentError, match="smaller than the filter"):
        af.image.ssim(af.constant(x[:, :8, :8]), af.constant(x[:, :8, :8]), 1.0)


def test_resize_with_pad_central_crop_convert():
    out = run_op(lambda a: af.image.resize_image_with_pad(a, 10, 10), [IM.astype(np.float32)])
    # 6x7 fits 10x10 as 8x10 (ratio 0.7); TF's top padding is floor((10 - 8.57) / 2) = 0
    assert out.shape == (2, 10, 10, 3)
    assert out[:, :8].all() and not out[:, 8:].any()
    img = np.arange(60, dtype=np.float32).reshape(4, 5, 3)
    got = run_op(lambda a: af.image.central_crop(a, 0.5), [img])
    assert got.tolist() == img[1:3, 1:4].tolist()  # TF's margins: size // 4 on each side
    got = run_op(lambda a: af.image.convert_image_dtype(a, af.uint8, saturate=True),
                 [np.float32([0, 0.5, 1.2, -0.1, 1.0])])
    assert got.tolist() == [0, 127, 255, 0, 255]


def test_sample_distorted_bounding_box_respects_constraints():
    boxes = np.float32([[[0.2, 0.3, 0.7, 0.9]]])
    with af.Graph().as_default():
        af.set_random_seed(3)
        begin, size, box = af.image.sample_distorted_bounding_box(
            [40, 50, 3], af.constant(boxes), min_object_covered=0.6,
            aspect_ratio_range=(0.5, 2.0), area_range=(0.1, 0.8))
        with af.Session() as s:
            draws = [s.run([begin, size, box]) for _ in range(40)]
    seen = set()
    for b, z, bx in draws:
        assert b.dtype == np.int32 and b[2] == 0 and z[2] == -1
        y, x, h, w = int(b[0]), int(b[1]), int(z[0]), int(z[1])
        assert 0 <= y and y + h <= 40 and 0 <= x and x + w <= 50
        np.testing.assert_allclose(bx[0, 0], [y / 40, x / 50, (y + h) / 40, (x + w) / 50])
        if (h, w) != (40, 50):  # a sampled crop (the fallback is the whole image)
            assert 0.1 * 2000 <= h * w <= 0.8 * 2000
            assert 0.5 - 0.05 <= w / h <= 2.0 + 0.1
            iy = max(0, min(y + h, 28) - max(y, 8))
            ix = max(0, min(x + w, 45) - max(x, 15))
            assert iy * ix / (20 * 30) >= 0.6
        seen.add((y, x, h, w))
    assert len(seen) > 5  # each run draws a new crop
    with pytest.raises(InvalidArgumentError, match="use_image_if_no_bounding_boxes"):
        run_op(lambda s: af.image.sample_distorted_bounding_box(
            s, af.zeros([1, 0, 4]))[0], [np.int32([10, 10, 3])])


def test_ssim_multiscale_and_integer_images():
    x = R.uniform(0, 1, (1, 40, 44, 2)).astype(np.float32)
    y = np.clip(x + R.normal(0, 0.1, x.shape), 0, 1).astype(np.float32)
    same, ms, one = run_op(lambda a, b: [
        af.image.ssim_multiscale(a, a, 1.0, filter_size=3, power_factors=(0.5, 0.3, 0.2)),
        af.image.ssim_multiscale(a, b, 1.0, filter_size=3, power_factors=(0.5, 0.3, 0.2)),
        af.image.ssim_multiscale(a, b, 1.0, filter_size=3, power_factors=(1.0,))], [x, y])
    np.testing.assert_allclose(same, 1.0, rtol=1e-5)
    plain = run_op(lambda a, b: af.image.ssim(a, b, 1.0, filter_size=3), [x, y])
    np.testing.assert_allclose(one, plain, rtol=1e-5)  # one scale: plain SSIM
    assert 0 < ms[0] < 1
    # integer images scale to [0, 1] and so does max_val (255 for uint8 -> 1.0), as TF
    u, v = (x * 255).astype(np.uint8), (y * 255).astype(np.uint8)
    s8, p8 = run_op(lambda a, b: [af.image.ssim(a, b, 255, filter_size=3),
                                  af.image.psnr(a, b, 255)], [u, v])
    sf, pf = run_op(lambda a, b: [af.image.ssim(a, b, 1.0, filter_size=3),
                                  af.image.psnr(a, b, 1.0)], [u / np.float32(255),
                                                              v / np.float32(255)])
    np.testing.assert_allclose([s8, p8], [sf, pf], rtol=1e-5)
