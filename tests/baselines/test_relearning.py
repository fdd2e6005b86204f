"""Diagnosing & Re-learning: purity and alpha by hand, the soft re-initialisation reaches only the
encoders, the schedule, a side-by-side re-learning against BalanceBenchmark's code, and end-to-end runs."""
import math

import numpy as np
import pytest
import torch
from helpers import make_method, quick_fit, toy_dataset
from sklearn import preprocessing
from sklearn.cluster import KMeans
from sklearn.metrics import accuracy_score

from baselines.relearning import purity, relearn_strength
from mmbench.batching import SplitTensors


def test_purity_and_strength_by_hand():
    labels = np.array([0, 0, 1, 1, 1, 2])
    clusters = np.array([5, 5, 5, 7, 7, 7])  # cluster 5: {0, 0, 1} -> 2 hits; cluster 7: {1, 1, 2} -> 2 hits
    assert purity(labels, clusters) == pytest.approx(4 / 6)
    assert relearn_strength(0.9, 0.6, 3.0) == pytest.approx(math.tanh(0.9))


def ctx_for(data, method, epoch):
    c = type("Ctx", (), {})()
    c.train, c.val, c.eval_batch_size, c.epoch = SplitTensors(data, "train"), SplitTensors(data, "val"), 64, epoch
    return c


def test_relearning_moves_only_encoders_toward_their_init_on_schedule():
    data = toy_dataset()
    method = make_method("relearning", data, epochs=10, hp={"reinit_epoch": 0.3, "reinit_num": 1})
    method.on_fit_start(None)
    with torch.no_grad():  # pretend training moved every parameter
        for p in method.model.parameters():
            p.add_(0.5)
    trained = {k: v.clone() for k, v in method.model.state_dict().items()}
    assert method.period() == 3
    method.on_epoch_end(ctx_for(data, method, 2))  # not a re-learning epoch
    assert all(torch.equal(v, method.model.state_dict()[k]) for k, v in trained.items())
    method.on_epoch_end(ctx_for(data, method, 3))
    alphas = method.alphas[-1]
    state = method.model.state_dict()
    for m in ("a", "b"):
        for k, p in method.model.encoders[m].named_parameters():
            expected = alphas[m] * method.init_state[m][k] + (1 - alphas[m]) * trained[f"encoders.{m}.{k}"]
            torch.testing.assert_close(p.detach(), expected)
    assert all(torch.equal(state[k], v) for k, v in trained.items() if k.startswith("head"))
    method.on_epoch_end(ctx_for(data, method, 6))  # reinit_num = 1: no second re-learning
    assert len(method.alphas) == 1


def transcribed_reinit_score(train_features, val_features, train_y, val_y, n_classes, move_lambda):
    """BalanceBenchmark ReLearningTrainer.reinit_score (+ purity_score), one modality."""
    def purity_score(y_true, y_pred):
        y_true = y_true.copy()
        y_voted_labels = np.zeros(y_true.shape)
        labels = np.unique(y_true)
        ordered_labels = np.arange(labels.shape[0])
        for k in range(labels.shape[0]):
            y_true[y_true == labels[k]] = ordered_labels[k]
        labels = np.unique(y_true)
        bins = np.concatenate((labels, [np.max(labels) + 1]), axis=0)
        for cluster in np.unique(y_pred):
            hist, _ = np.histogram(y_true[y_pred == cluster], bins=bins)
            y_voted_labels[y_pred == cluster] = np.argmax(hist)
        return accuracy_score(y_true, y_voted_labels)

    scores = []
    for feats, y in ((train_features, train_y), (val_features, val_y)):
        result = preprocessing.MinMaxScaler(feature_range=(-1, 1)).fit_transform(feats)
        y_pred = KMeans(n_clusters=n_classes, random_state=0, n_init=10).fit_predict(result)
        scores.append(purity_score(y, y_pred))
    return torch.tanh(torch.tensor(move_lambda * np.abs(scores[0] - scores[1])))


def test_side_by_side_relearning_against_released_code():
    data = toy_dataset()
    method = make_method("relearning", data, epochs=4)
    method.on_fit_start(None)
    with torch.no_grad():
        for p in method.model.parameters():
            p.mul_(1.5)
    ctx = ctx_for(data, method, 2)
    tf, vf = method.split_features(ctx.train, 64), method.split_features(ctx.val, 64)
    ty, vy = ctx.train.labels.numpy(), ctx.val.labels.numpy()
    weight = {m: transcribed_reinit_score(tf[i], vf[i], ty, vy, data.num_classes, 3.0) for i, m in enumerate("ab")}
    # the released reinit: param.data = w * init + (1 - w) * current, for names containing the modality
    expected = {}
    for name, param in method.model.named_parameters():
        for m in "ab":
            if name.startswith(f"encoders.{m}."):
                init = method.init_state[m][name[len(f"encoders.{m}."):]]
                expected[name] = weight[m] * init + (1 - weight[m]).to(param.device) * param.data
    method.on_epoch_end(ctx)
    assert all(abs(method.alphas[-1][m] - float(weight[m])) < 1e-12 for m in "ab")
    assert max(method.alphas[-1].values()) > 0  # a real move toward the init is compared
    params = dict(method.model.named_parameters())
    assert max(float((params[k] - v).detach().abs().max()) for k, v in expected.items()) == 0


@pytest.mark.parametrize("three,pattern", [(False, "complete"), (True, "complete"), (False, "dropout")])
def test_end_to_end(three, pattern):
    out = quick_fit("relearning", toy_dataset(three=three), epochs=3, pattern=pattern, hp={"reinit_epoch": 1.0 / 3})
    assert out["metrics"]["best_epoch"] >= 0 and any(k.startswith("alpha") for k in out["history"][1]["coefficients"])
