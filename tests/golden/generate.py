#!/usr/bin/env python3
"""Golden values for Cluster's engine, computed by PyTorch.

What it makes
    One JSON file per family under tests/Cluster.Shared.Tests/Golden/ (conv2d, pooling, dense,
    activations, batchnorm, residual, network, recurrent, losses, optimizers, clipping,
    schedules). Every case holds its fixed inputs and weights next to PyTorch's results, so the
    C# tests (tests/Cluster.Shared.Tests/Golden/GoldenTests.cs) load everything from the file and
    never run Python or reproduce PyTorch's random numbers.

    Layer cases: a model spec in Cluster's syntax ("input 3 6 6; conv2d 4 3"), the input x, every
    parameter (named as Cluster's Sequential names them: "0.weight", "0.conv1.weight", ...), the
    batch-norm running statistics where there are any, and an upstream gradient dy; the loss is
    L = sum(y * dy), so dL/dy = dy. Expected: the output y, dL/dx, every parameter gradient and,
    in training mode, the running statistics after the step.
    Loss cases: logits, labels (and targets for MSE); expected: the mean loss and d(loss)/d(logits).
    Optimizer cases: a weight [3, 4] (decays) and a bias [4] (does not), a start point and one
    gradient per step; expected: the parameters after every step.
    Clipping cases: a gradient vector and a max norm; expected: the norm and the clipped vector.
    Schedule cases: a schedule in Cluster's --schedule syntax; expected: the rate of every epoch.

How to run
    On Debian 12: apt-get install python3-torch, then from the repository root
        python3 tests/golden/generate.py
    (use /usr/bin/python3 if another python3 comes first on the PATH). It rewrites every file
    deterministically: each case seeds its own generator, PyTorch runs on one CPU thread in
    float32, and values are written with 9 significant digits, enough to round-trip a float32.
    CI does not run this script; the JSON files it writes are committed.
"""

import json
import os
import sys
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Cluster.Shared.Tests", "Golden"))


def values(t):
    """A tensor's shape and its values with 9 significant digits (round-trips float32)."""
    t = t.detach().to(torch.float32).contiguous()
    return {"shape": list(t.shape), "values": [float("%.9g" % v) for v in t.flatten().tolist()]}


def uniform(g, shape, low, high):
    return torch.rand(shape, generator=g, dtype=torch.float32) * (high - low) + low


def normal(g, shape, std=1.0):
    return torch.randn(shape, generator=g, dtype=torch.float32) * std


# ----------------------------------------------------------------------------------------------
# Layers

class Step(nn.Module):
    """Runs a recurrent module and keeps the last step (out[:, -1, :]) or every step."""

    def __init__(self, rnn, sequence):
        super().__init__()
        self.rnn = rnn
        self.sequence = sequence

    def forward(self, x):
        out, _ = self.rnn(x)
        return out if self.sequence else out[:, -1, :]


class BasicBlock(nn.Module):
    """torchvision's BasicBlock with biased convolutions, as Cluster's ResidualBlock has them."""

    def __init__(self, channels, filters, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, filters, 3, stride, 1)
        self.bn1 = nn.BatchNorm2d(filters)
        self.conv2 = nn.Conv2d(filters, filters, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(filters)
        self.downsample = None
        if stride != 1 or channels != filters:
            self.downsample = nn.Sequential(nn.Conv2d(channels, filters, 1, stride), nn.BatchNorm2d(filters))

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


def inner(module):
    return module.rnn if isinstance(module, Step) else module


def named_parameters(modules):
    """Parameters named as Cluster's Sequential names them: layer index, then the layer's own name."""
    for i, m in enumerate(modules):
        for name, p in inner(m).named_parameters():
            yield f"{i}.{name}", p


def named_state(modules):
    for i, m in enumerate(modules):
        for name, b in inner(m).named_buffers():
            if not name.endswith("num_batches_tracked"):
                yield f"{i}.{name}", b


def randomize(modules, g):
    """Fixed weights: U(-0.5, 0.5), batch-norm scales U(0.5, 1.5), running variances U(0.5, 2)."""
    with torch.no_grad():
        for name, p in named_parameters(modules):
            is_norm_scale = name.endswith("weight") and p.dim() == 1
            p.copy_(uniform(g, p.shape, 0.5, 1.5) if is_norm_scale else uniform(g, p.shape, -0.5, 0.5))
        for name, b in named_state(modules):
            b.copy_(uniform(g, b.shape, 0.5, 2.0) if name.endswith("running_var") else normal(g, b.shape, 0.5))


def layer_case(name, spec, modules, batch, seed, training=True, x=None):
    """Runs x through the modules with L = sum(y * dy) and records y, dx and every gradient."""
    g = torch.Generator().manual_seed(seed)
    lines = [line.strip() for line in spec.split(";")]
    input_shape = [int(v) for v in lines[0].split()[1:]]
    randomize(modules, g)
    for m in modules:
        m.train(training)
    if x is None:
        x = normal(g, [batch] + input_shape)
    x = x.clone().requires_grad_(True)
    case = {"name": name, "model": "; ".join(lines), "training": training, "x": values(x)}
    case["parameters"] = {n: values(p) for n, p in named_parameters(modules)}
    state = dict(named_state(modules))
    if state:
        case["state"] = {n: values(b) for n, b in state.items()}
    y = x
    for m in modules:
        y = m(y)
    dy = normal(g, y.shape)
    case["dy"] = values(dy)
    (y * dy).sum().backward()
    expected = {"y": values(y), "dx": values(x.grad)}
    expected["gradients"] = {n: values(p.grad) for n, p in named_parameters(modules)}
    if state and training:
        expected["state"] = {n: values(b) for n, b in state.items()}
    case["expected"] = expected
    return case


def conv2d_cases():
    return [
        layer_case("conv2d_k3_s1_p0", "input 3 6 6; conv2d 4 3", [nn.Conv2d(3, 4, 3)], 2, 101),
        layer_case("conv2d_k3_s2_p1", "input 3 7 7; conv2d 5 3 stride=2 pad=1", [nn.Conv2d(3, 5, 3, 2, 1)], 2, 102),
        layer_case("conv2d_k3_s1_p1_one_channel", "input 1 5 5; conv2d 2 3 pad=1", [nn.Conv2d(1, 2, 3, 1, 1)], 3, 103),
        layer_case("conv2d_k1", "input 4 3 3; conv2d 3 1", [nn.Conv2d(4, 3, 1)], 2, 104),
        layer_case("conv2d_k5_s2_p2", "input 2 9 8; conv2d 3 5 stride=2 pad=2", [nn.Conv2d(2, 3, 5, 2, 2)], 2, 105),
    ]


def pooling_cases():
    return [
        layer_case("maxpool2d_2", "input 3 6 6; maxpool2d 2", [nn.MaxPool2d(2)], 2, 201),
        layer_case("maxpool2d_2_wide", "input 2 4 20; maxpool2d 2", [nn.MaxPool2d(2)], 2, 202),
        layer_case("maxpool2d_2_odd", "input 2 5 7; maxpool2d 2", [nn.MaxPool2d(2)], 2, 203),
        layer_case("maxpool2d_3_s2", "input 2 7 7; maxpool2d 3 stride=2", [nn.MaxPool2d(3, 2)], 2, 204),
        layer_case("maxpool2d_3_s2_p1", "input 2 6 6; maxpool2d 3 stride=2 pad=1", [nn.MaxPool2d(3, 2, 1)], 2, 205),
        layer_case("avgpool2d_2", "input 3 6 6; avgpool2d 2", [nn.AvgPool2d(2)], 2, 206),
        layer_case("avgpool2d_3_s2_p1", "input 2 7 7; avgpool2d 3 stride=2 pad=1", [nn.AvgPool2d(3, 2, 1)], 2, 207),
        layer_case("globalavgpool2d", "input 4 3 5; globalavgpool2d", [nn.AdaptiveAvgPool2d(1), nn.Flatten()], 3, 208),
    ]


def dense_cases():
    return [
        layer_case("dense", "input 5; dense 3", [nn.Linear(5, 3)], 4, 301),
        layer_case("dense_wide", "input 17; dense 9", [nn.Linear(17, 9)], 3, 302),
        layer_case("flatten_dense", "input 2 3 3; flatten; dense 4", [nn.Flatten(), nn.Linear(18, 4)], 2, 303),
    ]


def activation_cases():
    return [
        layer_case("relu", "input 12; relu", [nn.ReLU()], 3, 401),
        layer_case("leakyrelu", "input 12; leakyrelu slope=0.1", [nn.LeakyReLU(0.1)], 3, 402),
        layer_case("sigmoid", "input 12; sigmoid", [nn.Sigmoid()], 3, 403),
        layer_case("tanh", "input 12; tanh", [nn.Tanh()], 3, 404),
    ]


def batchnorm_cases():
    # Shifted, scaled inputs so the normalisation has something to remove.
    g = torch.Generator().manual_seed(500)
    images = normal(g, [4, 3, 3, 3], 2.0) + 1.5
    features = normal(g, [6, 5], 3.0) - 2.0
    return [
        layer_case("batchnorm2d_train", "input 3 3 3; batchnorm2d", [nn.BatchNorm2d(3)], 4, 501, x=images),
        layer_case("batchnorm2d_eval", "input 3 3 3; batchnorm2d", [nn.BatchNorm2d(3)], 4, 502, training=False, x=images),
        layer_case("batchnorm2d_train_momentum", "input 3 3 3; batchnorm2d momentum=0.3 eps=0.001",
                   [nn.BatchNorm2d(3, eps=1e-3, momentum=0.3)], 4, 503, x=images),
        layer_case("batchnorm1d_train", "input 5; batchnorm1d", [nn.BatchNorm1d(5)], 6, 504, x=features),
        layer_case("batchnorm1d_eval", "input 5; batchnorm1d", [nn.BatchNorm1d(5)], 6, 505, training=False, x=features),
        layer_case("conv2d_batchnorm2d_train", "input 2 5 5; conv2d 3 3; batchnorm2d",
                   [nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3)], 3, 506),
    ]


def residual_cases():
    return [
        layer_case("residual_identity", "input 3 5 5; residual 3", [BasicBlock(3, 3, 1)], 2, 601),
        layer_case("residual_projection", "input 2 6 6; residual 4 stride=2", [BasicBlock(2, 4, 2)], 2, 602),
        layer_case("residual_identity_eval", "input 3 5 5; residual 3", [BasicBlock(3, 3, 1)], 2, 603, training=False),
    ]


def network_cases():
    lenet = [nn.Conv2d(1, 3, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(27, 8), nn.Tanh(), nn.Linear(8, 4)]
    return [
        layer_case("small_lenet", "input 1 8 8; conv2d 3 3; relu; maxpool2d 2; flatten; dense 8; tanh; dense 4", lenet, 3, 701),
    ]


def recurrent_cases():
    def lstm(i, h, seq):
        return Step(nn.LSTM(i, h, batch_first=True), seq)

    def gru(i, h, seq):
        return Step(nn.GRU(i, h, batch_first=True), seq)

    def rnn(i, h, seq):
        return Step(nn.RNN(i, h, nonlinearity="tanh", batch_first=True), seq)

    return [
        layer_case("lstm_last", "input 5 3; lstm 4", [lstm(3, 4, False)], 2, 801),
        layer_case("lstm_sequence", "input 5 3; lstm 4 return=sequence", [lstm(3, 4, True)], 2, 802),
        layer_case("gru_last", "input 5 3; gru 4", [gru(3, 4, False)], 2, 803),
        layer_case("gru_sequence", "input 5 3; gru 4 return=sequence", [gru(3, 4, True)], 2, 804),
        layer_case("rnn_last", "input 5 3; rnn 4", [rnn(3, 4, False)], 2, 805),
        layer_case("rnn_sequence", "input 5 3; rnn 4 return=sequence", [rnn(3, 4, True)], 2, 806),
        layer_case("lstm_stacked", "input 6 3; lstm 5 return=sequence; lstm 4", [lstm(3, 5, True), lstm(5, 4, False)], 3, 807),
        layer_case("gru_stacked", "input 6 3; gru 5 return=sequence; gru 4 return=sequence", [gru(3, 5, True), gru(5, 4, True)], 3, 808),
        layer_case("lstm_dense", "input 4 2; lstm 6; dense 3", [lstm(2, 6, False), nn.Linear(6, 3)], 2, 809),
        layer_case("reshape_gru_rows", "input 1 4 6; reshape 4 6; gru 5", [nn.Flatten(1, 2), gru(6, 5, False)], 2, 810),
    ]


# ----------------------------------------------------------------------------------------------
# Losses

def loss_cases():
    cases = []
    g = torch.Generator().manual_seed(900)

    def cross_entropy(name, logits, labels):
        z = logits.clone().requires_grad_(True)
        loss = F.cross_entropy(z, labels)
        loss.backward()
        cases.append({"name": name, "loss": "cross-entropy", "logits": values(logits), "labels": labels.tolist(),
                      "expected": {"loss": float("%.9g" % loss.item()), "dlogits": values(z.grad)}})

    def mse(name, logits, labels=None, targets=None):
        z = logits.clone().requires_grad_(True)
        t = F.one_hot(labels, logits.shape[1]).to(torch.float32) if targets is None else targets
        loss = F.mse_loss(z, t)
        loss.backward()
        case = {"name": name, "loss": "mse", "logits": values(logits)}
        if targets is None:
            case["labels"] = labels.tolist()
        else:
            case["targets"] = values(targets)
        case["expected"] = {"loss": float("%.9g" % loss.item()), "dlogits": values(z.grad)}
        cases.append(case)

    cross_entropy("cross_entropy", normal(g, [4, 5], 2.0), torch.tensor([3, 0, 4, 1]))
    cross_entropy("cross_entropy_large_logits", normal(g, [3, 6], 30.0) + 50.0, torch.tensor([5, 2, 2]))
    cross_entropy("cross_entropy_ten_classes", normal(g, [8, 10]), torch.tensor([0, 1, 2, 3, 9, 8, 7, 6]))
    mse("mse_labels", normal(g, [4, 5]), labels=torch.tensor([1, 4, 0, 0]))
    mse("mse_targets", normal(g, [3, 7]), targets=normal(g, [3, 7]))
    return cases


# ----------------------------------------------------------------------------------------------
# Optimizers, clipping, schedules

OPTIMIZER_STEPS = 4


def optimizer_case(name, options, make, seed):
    """
    A weight [3, 4] with `options["weight_decay"]` and a bias [4] without, as Cluster decays weights
    only. Learning rates are large enough that a step moves a parameter by about 0.1, so a 1e-4
    tolerance on the parameters still catches a small error in the update rule.
    """
    g = torch.Generator().manual_seed(seed)
    weight = normal(g, [3, 4]).requires_grad_(True)
    bias = normal(g, [4]).requires_grad_(True)
    start = torch.cat([weight.detach().flatten(), bias.detach()])
    decay = options.get("weight_decay", 0.0)
    optimizer = make([{"params": [weight], "weight_decay": decay}, {"params": [bias], "weight_decay": 0.0}])
    gradients, after = [], []
    for _ in range(OPTIMIZER_STEPS):
        grad = normal(g, [16])
        gradients.append(values(grad)["values"])
        weight.grad = grad[:12].reshape(3, 4).clone()
        bias.grad = grad[12:].clone()
        optimizer.step()
        after.append(values(torch.cat([weight.detach().flatten(), bias.detach()]))["values"])
    return {"name": name, "optimizer": options,
            "layout": [{"name": "0.weight", "shape": [3, 4], "decays": True}, {"name": "0.bias", "shape": [4], "decays": False}],
            "start": values(start)["values"], "gradients": gradients, "expected": after}


def optimizer_cases():
    o = torch.optim
    return [
        optimizer_case("sgd", {"name": "sgd", "lr": 0.1}, lambda p: o.SGD(p, lr=0.1), 1001),
        optimizer_case("sgd_weight_decay", {"name": "sgd", "lr": 0.1, "weight_decay": 0.05},
                       lambda p: o.SGD(p, lr=0.1), 1002),
        optimizer_case("momentum", {"name": "momentum", "lr": 0.1, "momentum": 0.9},
                       lambda p: o.SGD(p, lr=0.1, momentum=0.9), 1003),
        optimizer_case("momentum_weight_decay", {"name": "momentum", "lr": 0.05, "momentum": 0.8, "weight_decay": 0.1},
                       lambda p: o.SGD(p, lr=0.05, momentum=0.8), 1004),
        optimizer_case("nesterov", {"name": "nesterov", "lr": 0.1, "momentum": 0.9},
                       lambda p: o.SGD(p, lr=0.1, momentum=0.9, nesterov=True), 1005),
        optimizer_case("adam", {"name": "adam", "lr": 0.1}, lambda p: o.Adam(p, lr=0.1), 1006),
        optimizer_case("adam_betas", {"name": "adam", "lr": 0.2, "beta1": 0.8, "beta2": 0.95, "eps": 1e-3},
                       lambda p: o.Adam(p, lr=0.2, betas=(0.8, 0.95), eps=1e-3), 1007),
        optimizer_case("adam_weight_decay", {"name": "adam", "lr": 0.1, "weight_decay": 0.5},
                       lambda p: o.Adam(p, lr=0.1), 1008),
        optimizer_case("adamw", {"name": "adamw", "lr": 0.1, "weight_decay": 0.1},
                       lambda p: o.AdamW(p, lr=0.1), 1009),
        optimizer_case("adamw_large_decay", {"name": "adamw", "lr": 0.05, "weight_decay": 2.0},
                       lambda p: o.AdamW(p, lr=0.05), 1010),
        optimizer_case("rmsprop", {"name": "rmsprop", "lr": 0.01}, lambda p: o.RMSprop(p, lr=0.01), 1011),
        optimizer_case("rmsprop_alpha_weight_decay", {"name": "rmsprop", "lr": 0.01, "alpha": 0.9, "weight_decay": 0.1},
                       lambda p: o.RMSprop(p, lr=0.01, alpha=0.9), 1012),
        optimizer_case("rmsprop_momentum", {"name": "rmsprop", "lr": 0.01, "momentum": 0.9},
                       lambda p: o.RMSprop(p, lr=0.01, momentum=0.9), 1013),
        optimizer_case("adagrad", {"name": "adagrad", "lr": 0.1}, lambda p: o.Adagrad(p, lr=0.1), 1014),
        optimizer_case("adagrad_weight_decay", {"name": "adagrad", "lr": 0.1, "weight_decay": 0.1},
                       lambda p: o.Adagrad(p, lr=0.1), 1015),
    ]


def clipping_cases():
    g = torch.Generator().manual_seed(1100)
    cases = []
    for name, max_norm, scale in [("clipped", 1.0, 2.0), ("unchanged", 10.0, 0.5), ("clipped_hard", 0.01, 3.0)]:
        grad = normal(g, [11], scale)
        clipped = grad.clone().requires_grad_(False)
        p = torch.zeros(11, requires_grad=True)
        p.grad = clipped
        norm = torch.nn.utils.clip_grad_norm_([p], max_norm)
        cases.append({"name": name, "max_norm": max_norm, "gradients": values(grad)["values"],
                      "expected": {"norm": float("%.9g" % norm.item()), "gradients": values(p.grad)["values"]}})
    return cases


def schedule_case(name, text, epochs, make, base_rate=0.1):
    """The rate PyTorch's scheduler gives each epoch (stepped once per epoch), for Cluster's --schedule text."""
    p = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([p], lr=base_rate)
    scheduler = make(optimizer)
    rates = []
    for _ in range(epochs):
        rates.append(float("%.9g" % optimizer.param_groups[0]["lr"]))
        optimizer.step()
        scheduler.step()
    return {"name": name, "schedule": text, "epochs": epochs, "base_rate": base_rate, "rates": rates}


def schedule_cases():
    s = torch.optim.lr_scheduler
    return [
        schedule_case("step", "step:2:0.5", 8, lambda o: s.StepLR(o, step_size=2, gamma=0.5)),
        schedule_case("step_3", "step:3:0.1", 10, lambda o: s.StepLR(o, step_size=3, gamma=0.1)),
        schedule_case("exponential", "exp:0.9", 8, lambda o: s.ExponentialLR(o, gamma=0.9)),
        # NOTE: Cluster's cosine ends at epoch T = epochs and holds η_min after it, so only epochs 0..T-1 are compared.
        schedule_case("cosine", "cosine", 6, lambda o: s.CosineAnnealingLR(o, T_max=6)),
        schedule_case("cosine_long", "cosine", 20, lambda o: s.CosineAnnealingLR(o, T_max=20)),
        # Cluster's warm-up of W epochs is LinearLR from 1/(W+1) to 1 over W epochs, then the inner schedule from its epoch 0.
        schedule_case("warmup_cosine", "warmup:2,cosine", 8, lambda o: s.SequentialLR(
            o, [s.LinearLR(o, start_factor=1 / 3, end_factor=1.0, total_iters=2), s.CosineAnnealingLR(o, T_max=6)], milestones=[2])),
        schedule_case("warmup_step", "warmup:3,step:2:0.5", 9, lambda o: s.SequentialLR(
            o, [s.LinearLR(o, start_factor=1 / 4, end_factor=1.0, total_iters=3), s.StepLR(o, step_size=2, gamma=0.5)], milestones=[3])),
    ]


# ----------------------------------------------------------------------------------------------

def to_json(value, indent=""):
    """JSON with objects one key per line and lists of numbers on one line, so diffs stay readable."""
    inner = indent + " "
    if isinstance(value, dict):
        items = [f"{inner}{json.dumps(k)}: {to_json(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}" if items else "{}"
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        return "[\n" + ",\n".join(inner + to_json(v, inner) for v in value) + "\n" + indent + "]"
    return json.dumps(value)


FAMILIES = {
    "conv2d": conv2d_cases,
    "pooling": pooling_cases,
    "dense": dense_cases,
    "activations": activation_cases,
    "batchnorm": batchnorm_cases,
    "residual": residual_cases,
    "network": network_cases,
    "recurrent": recurrent_cases,
    "losses": loss_cases,
    "optimizers": optimizer_cases,
    "clipping": clipping_cases,
    "schedules": schedule_cases,
}


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.set_default_dtype(torch.float32)
    # SequentialLR steps its second schedule with an explicit epoch at the milestone, which warns.
    warnings.filterwarnings("ignore", message="The epoch parameter", category=UserWarning)
    os.makedirs(OUT, exist_ok=True)
    for family, make in FAMILIES.items():
        cases = make()
        document = {"generator": "tests/golden/generate.py", "torch": torch.__version__.split("+")[0], "cases": cases}
        path = os.path.join(OUT, family + ".json")
        with open(path, "w", encoding="utf-8") as f:
            f.write(to_json(document) + "\n")
        print(f"{path}: {len(cases)} cases", file=sys.stderr)


if __name__ == "__main__":
    main()
