"""The foreground score of attribution maps (Kobs 2023, Eqs. 11.2-11.4), checked against known answers."""

import numpy as np
import pytest

from domainknowledge.principles import masking


def _mask(size=4, foreground=((0, 0), (0, 1), (1, 0), (1, 1))):
    m = np.zeros((size, size))
    for i, j in foreground:
        m[i, j] = 1.0
    return m


def test_foreground_share_is_the_covered_fraction():
    assert masking.foreground_share(_mask()) == pytest.approx([0.25])
    soft = np.full((2, 5, 5), 0.5)
    assert masking.foreground_share(soft) == pytest.approx([0.5, 0.5])


def test_uniform_attribution_scores_zero_whatever_the_object_size():
    small, large = _mask(), _mask(foreground=[(i, j) for i in range(4) for j in range(3)])
    uniform = np.ones((2, 4, 4))
    assert masking.foreground_score(np.stack([small, large]), uniform) == pytest.approx([0.0, 0.0])
    # a naive share of attribution on the object would triple with the object's size (Sec. 11.4)
    assert masking.attribution_share(np.stack([small, large]), uniform) == pytest.approx([0.25, 0.75])


def test_attribution_only_on_the_object_scores_one_and_only_on_the_background_minus_f_over_one_minus_f():
    m = _mask()
    assert masking.foreground_score(m, m) == pytest.approx([1.0])
    assert masking.foreground_score(m, 1 - m) == pytest.approx([-0.25 / 0.75])


def test_half_the_attribution_on_a_quarter_of_the_image():
    m = _mask()
    a = np.where(m > 0, 1.0 / 4, 1.0 / 12)          # 1/2 of the total on the 4 foreground pixels
    assert masking.attribution_share(m, a) == pytest.approx([0.5])
    assert masking.foreground_score(m, a) == pytest.approx([(0.5 - 0.25) / 0.75])
    assert masking.foreground_score(m, 7.0 * a) == pytest.approx(masking.foreground_score(m, a))   # scale-free


def test_a_zero_map_scores_zero_and_bad_input_is_refused():
    m = _mask()
    assert masking.foreground_score(m, np.zeros_like(m)) == pytest.approx([0.0])
    with pytest.raises(ValueError, match="non-negative"):
        masking.foreground_score(m, -m)
    with pytest.raises(ValueError, match="shape"):
        masking.foreground_score(m, np.ones((3, 3)))
    with pytest.raises(ValueError, match="whole image"):
        masking.foreground_score(np.ones((4, 4)), np.ones((4, 4)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        masking.foreground_share(2 * m)


def test_attribution_share_on_an_object_half_the_image():
    masks = np.zeros((2, 4, 4), dtype=bool)
    masks[:, :2] = True                                           # the top half is the object
    maps = np.zeros((2, 4, 4))
    maps[0, :2] = 1.0                                             # all on the object
    maps[1] = 1.0                                                 # spread evenly
    np.testing.assert_allclose(masking.attribution_share(masks, maps), [1.0, 0.5])
    assert masking.attribution_share(masks[:1], np.zeros((1, 4, 4))) == pytest.approx([0.5])   # zero map: f(M)
    with pytest.raises(ValueError, match="shape"):
        masking.attribution_share(masks, maps[:, :2])
