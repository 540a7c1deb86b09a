"""MPII PCKh: equal to the official `MPIIDataset.evaluate` on reference data, its quirks pinned one by one, the .mat
files round-trip, and the evaluator orders, deduplicates and checks distributed predictions."""

from pathlib import Path

import numpy as np
import pytest
import scipy.io

from hrnet_pose.datasets.mpii import write_gt_mat
from hrnet_pose.evaluation.mpii import (
    STATS_NAMES,
    MpiiGroundTruth,
    MpiiGroundTruthError,
    MpiiPCKhEvaluator,
    evaluate_pckh,
    load_gt_mat,
    write_pred_mat,
)

FIX = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(scope="module")
def ref():
    return np.load(FIX / "mpii_pckh_official.npz")


def _gt(ref) -> MpiiGroundTruth:
    return MpiiGroundTruth(joints=ref["gt_joints"], missing=ref["gt_missing"], headboxes=ref["gt_headboxes"])


@pytest.mark.parametrize("tag", ["a", "b"])
def test_equals_the_official_evaluate_bit_for_bit(ref, tag, tmp_path):
    # the gt file goes through the .mat writer and reader, as the official code read it when the fixture was made
    path = str(tmp_path / "gt_valid.mat")
    write_gt_mat(path, ref["gt_joints"], ref["gt_missing"], ref["gt_headboxes"])
    stats = evaluate_pckh(ref[f"preds_{tag}"], load_gt_mat(path))
    assert list(stats) == list(ref["names"]) == STATS_NAMES
    # the same float operations in the same order as the official code: equal, not close
    assert np.array_equal(np.array(list(stats.values())), ref[f"official_{tag}"])


# Means are sums of count-weighted terms whose weights add up to 1 only up to float64 rounding (~1e-14): hand-made
# expectations of the means are compared to 1e-9 percent, far below a change of one joint (>= 1/28 of 100).
EPS = 1e-9


def _one_person(err_in_head_sizes: float, joint: int = 9):
    """One person, head box 10 x 0 px (head size 6 px), every joint exact except `joint`, moved right."""
    joints = np.tile(np.arange(1.0, 17.0)[:, None] * 10.0, (1, 2))[None]  # 1-based
    gt = MpiiGroundTruth(joints=joints, missing=np.zeros((1, 16), bool),
                         headboxes=np.array([[[0.0, 0.0], [10.0, 0.0]]]))
    preds = joints - 1.0
    preds[0, joint, 0] += err_in_head_sizes * 6.0
    return preds, gt


def test_distance_exactly_at_the_threshold_counts():
    preds, gt = _one_person(0.5)  # exactly 3 px = 0.5 head sizes: official `<=`
    assert evaluate_pckh(preds, gt)["Head"] == 100.0
    preds, gt = _one_person(0.51)
    assert evaluate_pckh(preds, gt)["Head"] == 0.0


def test_mean_at_01_is_the_official_threshold_0_11():
    preds, gt = _one_person(0.105)  # above 0.1, below 0.11 head sizes
    stats = evaluate_pckh(preds, gt)
    assert stats["Mean@0.1"] == pytest.approx(100.0, abs=EPS)  # counted: the official index 11 of 0, 0.01, ..., 0.5 is 0.11
    preds, gt = _one_person(0.115)
    assert evaluate_pckh(preds, gt)["Mean@0.1"] == pytest.approx(100.0 * 13 / 14, abs=EPS)  # one of 14 joints


def test_pelvis_and_thorax_are_not_in_the_mean_and_missing_joints_do_not_count():
    for joint in (6, 7):  # pelvis, thorax: wrong by 2 head sizes
        preds, gt = _one_person(2.0, joint=joint)
        assert evaluate_pckh(preds, gt)["Mean"] == pytest.approx(100.0, abs=EPS)
    preds, gt = _one_person(2.0, joint=15)  # left wrist
    stats = evaluate_pckh(preds, gt)
    assert stats["Wrist"] == 50.0 and stats["Mean"] == pytest.approx(100.0 * 13 / 14, abs=EPS)
    # a second, exact person; the first one's wrong wrist marked missing: nothing wrong is left to count
    missing = np.zeros((2, 16), bool)
    missing[0, 15] = True
    two = MpiiGroundTruth(joints=np.concatenate([gt.joints] * 2), missing=missing,
                          headboxes=np.concatenate([gt.headboxes] * 2))
    stats = evaluate_pckh(np.concatenate([preds, gt.joints - 1.0]), two)
    assert stats["Wrist"] == 100.0 and stats["Mean"] == pytest.approx(100.0, abs=EPS)


def test_a_joint_never_annotated_is_nan_and_left_out_of_the_means():
    preds, gt = _one_person(0.0)
    missing = np.zeros((1, 16), bool)
    missing[0, 9] = True  # head top never annotated in the set
    gt = MpiiGroundTruth(joints=gt.joints, missing=missing, headboxes=gt.headboxes)
    stats = evaluate_pckh(preds, gt)
    assert np.isnan(stats["Head"])
    assert stats["Mean"] == pytest.approx(100.0, abs=EPS) and stats["Mean@0.1"] == pytest.approx(100.0, abs=EPS)


def test_nan_predictions_are_wrong_not_an_error():
    preds, gt = _one_person(0.0)
    preds[0, 0] = np.nan
    assert evaluate_pckh(preds, gt)["Ankle"] == 50.0


def test_pred_mat_is_the_official_file(tmp_path):
    preds = np.arange(2 * 16 * 2, dtype=np.float32).reshape(2, 16, 2)
    path = write_pred_mat(preds, str(tmp_path / "pred.mat"))
    mat = scipy.io.loadmat(path)
    assert mat["preds"].dtype == np.float32 and mat["preds"].shape == (2, 16, 2)
    assert np.array_equal(mat["preds"], preds + 1)  # 1-based, as the official evaluate writes it
    with pytest.raises(ValueError, match=r"\[N, 16, 2\]"):
        write_pred_mat(preds[:, :15], str(tmp_path / "bad.mat"))


def test_gt_mat_errors_name_the_file_and_key(tmp_path, ref):
    with pytest.raises(FileNotFoundError, match="gt_valid.mat"):
        load_gt_mat(str(tmp_path / "gt_valid.mat"))
    bad = str(tmp_path / "bad.mat")
    write_gt_mat(bad, ref["gt_joints"], ref["gt_missing"], ref["gt_headboxes"])
    d = {k: v for k, v in scipy.io.loadmat(bad).items() if not k.startswith("__") and k != "headboxes_src"}
    scipy.io.savemat(bad, d)
    with pytest.raises(MpiiGroundTruthError, match="bad.mat: no 'headboxes_src'"):
        load_gt_mat(bad)
    with pytest.raises(MpiiGroundTruthError, match="63 predictions for 64"):
        evaluate_pckh(ref["preds_a"][:63], _gt(ref))


def test_evaluator_orders_and_deduplicates_distributed_shards(ref, tmp_path):
    preds, gt = ref["preds_a"], _gt(ref)
    ids = np.arange(len(preds))
    # two ranks, interleaved as a DistributedSampler shards, the last shard padded with a repeat of sample 0
    shards = [ids[0::2], np.concatenate([ids[1::2], [0]])]
    states = []
    for shard in shards:
        ev = MpiiPCKhEvaluator(gt)
        for chunk in np.array_split(shard, 3):
            ev.process(preds[chunk], sample_ids=chunk)
        states.append(ev.state())
    ev = MpiiPCKhEvaluator(gt)
    ev.merge_states(states)
    stats = ev.evaluate(str(tmp_path))
    assert np.array_equal(np.array(list(stats.values())), ref["official_a"])
    assert np.array_equal(scipy.io.loadmat(str(tmp_path / "pred.mat"))["preds"], preds + 1)

    ev = MpiiPCKhEvaluator(gt)
    ev.process(preds[:10], sample_ids=ids[:10])
    with pytest.raises(RuntimeError, match="10 distinct samples, expected all 64"):
        ev.evaluate()


def test_test_split_without_ground_truth_writes_only_pred_mat(tmp_path):
    ev = MpiiPCKhEvaluator(None, num_samples=3)
    ev.process(np.zeros((3, 16, 2)), sample_ids=[2, 0, 1])
    assert ev.evaluate(str(tmp_path), name="test") == {}
    assert scipy.io.loadmat(str(tmp_path / "pred.mat"))["preds"].shape == (3, 16, 2)


def test_hand_made_persons_from_a_gt_mat_file(tmp_path):
    """Four persons through the file interface (`evaluate_pckh(preds, 'gt_valid.mat')`, predictions with a score
    column): exact; left wrist off by 0.49 head sizes (correct); right elbow off by 0.51 (wrong); left knee missing in
    the ground truth and off by 5 head sizes (not counted). Expected values counted by hand below."""
    _, gt = _one_person(0.0)
    persons = [_one_person(0.0)[0], _one_person(0.49, joint=15)[0], _one_person(0.51, joint=11)[0],
               _one_person(5.0, joint=4)[0]]
    missing = np.zeros((4, 16), bool)
    missing[3, 4] = True
    path = str(tmp_path / "gt_valid.mat")
    write_gt_mat(path, np.concatenate([gt.joints] * 4), missing, np.concatenate([gt.headboxes] * 4))
    preds = np.concatenate(persons)
    scored = np.concatenate([preds, np.full(preds.shape[:2] + (1,), 0.9)], axis=2)  # [N, 16, 3]: scores ignored
    stats = evaluate_pckh(scored, path)
    assert list(stats)[:9] == ["Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean", "Mean@0.1"]
    # elbows: 8 annotated (2 per person), 1 wrong -> 7/8; wrists all correct; knees: 7 annotated, all correct
    assert stats["Elbow"] == pytest.approx(100.0 * (3 / 4 + 4 / 4) / 2, abs=EPS)  # right 3/4, left 4/4, averaged
    assert stats["Wrist"] == 100.0 and stats["Knee"] == 100.0 and stats["Head"] == 100.0
    # Mean: 14 joints x 4 persons minus 1 missing = 55 counted, 1 wrong
    assert stats["Mean"] == pytest.approx(100.0 * 54 / 55, abs=EPS)
    # Mean@0.1 (threshold 0.11): also the 0.49 wrist is wrong -> 53 of 55
    assert stats["Mean@0.1"] == pytest.approx(100.0 * 53 / 55, abs=EPS)
    assert evaluate_pckh(preds, path) == stats
