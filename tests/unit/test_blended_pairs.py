"""``BlendedPairs`` and ``data.teacher_share``: a teacher's labelled pairs mixed into training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speakup_fx.data.dataset import BlendedPairs
from speakup_fx.train.config import Config, from_dict


class Source:
    """Pairs that tell which source and item they came from."""

    def __init__(self, tag: float):
        self.tag = tag

    def __len__(self) -> int:
        return 10

    def __getitem__(self, item: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, index = item
        return torch.tensor([[self.tag, epoch, index]]), torch.tensor([[self.tag]])


def test_a_share_of_the_items_comes_from_the_extra_set_the_same_way_every_time():
    blended = BlendedPairs(Source(0.0), Source(1.0), extra_share=0.3, seed=5)
    items = [(epoch, index) for epoch in range(4) for index in range(500)]
    tags = [blended[item][0][0, 0].item() for item in items]
    share = sum(tags) / len(tags)
    assert abs(share - 0.3) < 4 * (0.3 * 0.7 / len(tags)) ** 0.5  # four standard errors of a binomial share
    assert tags == [BlendedPairs(Source(0.0), Source(1.0), 0.3, seed=5)[item][0][0, 0].item() for item in items]
    assert tags != [BlendedPairs(Source(0.0), Source(1.0), 0.3, seed=6)[item][0][0, 0].item() for item in items]
    noisy, _ = blended[(2, 17)]
    assert noisy[0, 1:].tolist() == [2, 17]  # the source is asked for the same item
    assert len(blended) == 10


@pytest.mark.parametrize("share", [0.0, 1.0, -0.1])
def test_an_extra_share_outside_the_open_interval_is_refused(share):
    with pytest.raises(ValueError, match="extra_share"):
        BlendedPairs(Source(0.0), Source(1.0), share, seed=0)


@pytest.mark.parametrize("data", [{"teacher_share": 0.3}, {"teacher_shards": ["/somewhere"]}, {"teacher_shards": ["/x"], "teacher_share": 1.0}])
def test_teacher_share_and_teacher_shards_go_together(data):
    with pytest.raises(ValueError, match="data.teacher_share"):
        from_dict(Config, {"data": data})
    assert from_dict(Config, {"data": {"teacher_shards": ["/x"], "teacher_share": 0.3}}).data.teacher_share == 0.3


def test_a_teachers_label_is_kept_only_where_it_keeps_the_speech_and_at_the_clean_speechs_level():
    from synthetic import noise, speech_like

    from speakup_fx.eval.metrics import speech_level_difference_db
    from speakup_fx.spark.degrade import TEACHER_MIN_LEVEL_DB, judged_label

    rate = 16_000
    clean = speech_like(2.0, rate)[0]
    noisy = clean + noise(2.0, rate, level_db=-20.0, seed=1)[0]
    np.testing.assert_array_equal(judged_label(clean, noisy, clean, rate), clean)  # a perfect label stays as it is
    quieter = clean * np.float32(10 ** ((TEACHER_MIN_LEVEL_DB + 0.5) / 20))
    kept = judged_label(clean, noisy, quieter, rate)
    assert kept.dtype == clean.dtype and abs(speech_level_difference_db(clean, kept, rate)) < 1e-4  # raised to the clean level
    assert judged_label(clean, noisy, clean * np.float32(10 ** ((TEACHER_MIN_LEVEL_DB - 0.5) / 20)), rate) is None  # speech removed
    assert judged_label(clean, noisy, noisy + noise(2.0, rate, level_db=-10.0, seed=2)[0], rate) is None  # less intelligible
    assert judged_label(0 * clean, noisy, clean, rate) is None  # nothing to judge
