import json

import numpy as np
import pytest

from ready2unlearn.data import DeletionRequest
from ready2unlearn.errors import RequestError


def test_class_request_views(blobs_split):
    v = DeletionRequest.for_classes(2).resolve(blobs_split.train, blobs_split.test, 4)
    assert set(v.forget.labels.tolist()) == {2} and 2 not in set(v.retain.labels.tolist())
    assert len(v.forget) + len(v.retain) == len(blobs_split.train)
    assert set(v.test_forget.labels.tolist()) == {2} and 2 not in set(v.test_retain.labels.tolist())
    assert set(v.forget.ids.tolist()).isdisjoint(v.retain.ids.tolist())


def test_random_request_is_seeded_fraction_and_test_is_all_retain(blobs_split):
    a = DeletionRequest.for_random(0.1, seed=1).resolve(blobs_split.train, blobs_split.test)
    b = DeletionRequest.for_random(0.1, seed=1).resolve(blobs_split.train, blobs_split.test)
    c = DeletionRequest.for_random(0.1, seed=2).resolve(blobs_split.train, blobs_split.test)
    assert len(a.forget) == 24 and np.array_equal(a.forget_positions, b.forget_positions)
    assert not np.array_equal(a.forget_positions, c.forget_positions)
    assert len(a.test_forget) == 0 and len(a.test_retain) == len(blobs_split.test)


def test_samples_request_uses_ids_not_positions(blobs_split):
    v = DeletionRequest.for_samples([1000, 1005]).resolve(blobs_split.train, blobs_split.test)
    assert v.forget.ids.tolist() == [1000, 1005] and v.forget_positions.tolist() == [0, 5]


def test_group_request(blobs_split):
    v = DeletionRequest.parse("group:user=3").resolve(blobs_split.train, blobs_split.test)
    assert v.forget.ids.tolist() == list(range(1030, 1040))
    assert len(v.test_forget) == 0


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("class:7", "unknown class 7"),
        ("samples:5", r"sample ids \[5\] are not in the training split"),
        ("group:owner=1", "no group column 'owner'"),
        ("group:user=77", "forget set is empty"),
        ("group:user=abc", "holds integers"),
        ("class:0,1,2,3", "nothing would remain"),
        ("random:0.001", "selects nothing"),
    ],
)
def test_requests_that_do_not_fit_the_data(blobs_split, text, match):
    with pytest.raises(RequestError, match=match):
        DeletionRequest.parse(text).resolve(blobs_split.train, blobs_split.test, 4)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("random:0", "strictly between 0 and 1"),
        ("random:1.5", "strictly between 0 and 1"),
        ("random:abc", "random:abc"),
        ("class:", "KIND:SPEC"),
        ("class:1,1", "duplicate"),
        ("delete:3", "unknown request kind"),
        ("group:user", "COLUMN=VALUE"),
        ("samples:missing.txt", "does not exist"),
        ("nocolon", "KIND:SPEC"),
    ],
)
def test_malformed_requests(text, match):
    with pytest.raises(RequestError, match=match):
        DeletionRequest.parse(text)


def test_empty_requests_rejected_at_construction():
    with pytest.raises(RequestError, match="forget set is empty"):
        DeletionRequest.for_samples([])
    with pytest.raises(RequestError, match="at least one class"):
        DeletionRequest.for_classes()


def test_sample_id_files(tmp_path):
    (tmp_path / "a.txt").write_text("3 4,5\n6")
    (tmp_path / "b.json").write_text(json.dumps([7, 8]))
    (tmp_path / "c.txt").write_text("1 two")
    assert DeletionRequest.parse(f"samples:{tmp_path / 'a.txt'}").sample_ids == (3, 4, 5, 6)
    assert DeletionRequest.parse(f"samples:{tmp_path / 'b.json'}").sample_ids == (7, 8)
    assert DeletionRequest.parse("samples:1,2").sample_ids == (1, 2)
    with pytest.raises(RequestError, match="integer ids"):
        DeletionRequest.parse(f"samples:{tmp_path / 'c.txt'}")


@pytest.mark.parametrize("text", ["class:1,3", "random:0.25@4", "samples:1,2,3", "group:author=7", "group:c=x"])
def test_dict_round_trip(text):
    r = DeletionRequest.parse(text)
    assert DeletionRequest.from_dict(json.loads(json.dumps(r.to_dict()))) == r
