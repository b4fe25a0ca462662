"""The words of a worked example (headings, table headers and the rules), in English or Chinese,
and the options a document is written with.

>>> Words("zh")("backward")
'反向传播'
>>> Words("en")("step", k=2)
'Step 2'
"""

from __future__ import annotations

from dataclasses import dataclass

LANGS = ("en", "zh")
NOTATIONS = ("textbook", "matrix")


@dataclass(frozen=True)
class Options:
    """How a document is written: significant digits, notation and language."""

    digits: int = 4
    notation: str = "textbook"  # textbook: net_j, o_j, w_ij, delta_j; matrix: I = XW + b, ...
    lang: str = "en"

    def __post_init__(self) -> None:
        if self.notation not in NOTATIONS:
            raise ValueError(
                f"notation must be one of {', '.join(NOTATIONS)}, got {self.notation!r}"
            )
        if self.lang not in LANGS:
            raise ValueError(f"lang must be one of {', '.join(LANGS)}, got {self.lang!r}")
        if not 1 <= self.digits <= 17:
            raise ValueError(f"digits must lie in 1..17, got {self.digits}")


_WORDS: dict[str, tuple[str, str]] = {
    # headings
    "network": ("Network", "网络"),
    "step": ("Step {k}", "第 {k} 步"),
    "samples": (" (samples {s})", "（样本 {s}）"),
    "sample1": (" (sample {s})", "（样本 {s}）"),
    "forward": ("Forward pass", "前向传播"),
    "loss": ("Loss", "损失"),
    "backward": ("Backward pass", "反向传播"),
    "update": ("Update (eta = {lr})", "更新（学习率 eta = {lr}）"),
    "check": ("Gradient check", "梯度检验"),
    "check_all": ("Gradient check (--verify)", "梯度检验（--verify）"),
    "summary": ("Summary", "小结"),
    "picture_fwd": (
        "The network, forward: net and o of each neuron (sample {s})",
        "网络（前向）：每个神经元的 net 与 o（样本 {s}）",
    ),
    "picture_bwd": (
        "The network, backward: delta of each neuron, dE/dw of each connection (sample {s})",
        "网络（反向）：每个神经元的 delta，每条连接的 dE/dw（样本 {s}）",
    ),
    "given": ("Given", "已知"),
    # layer titles
    "layer": ("Layer {i}", "第 {i} 层"),
    "hidden": ("hidden layer", "隐藏层"),
    "output": ("output layer", "输出层"),
    "conv2d": ("convolution", "卷积"),
    "maxpool2d": ("max pooling", "最大池化"),
    "avgpool2d": ("average pooling", "平均池化"),
    "layernorm": ("layer normalization", "层归一化"),
    "batchnorm": ("batch normalization, training mode", "批归一化（训练模式）"),
    "dropout": ("dropout", "随机失活（dropout）"),
    # table headers
    "col_layer": ("layer", "层"),
    "col_type": ("type", "类型"),
    "col_shape": ("neurons / shape", "神经元 / 形状"),
    "col_act": ("activation", "激活函数"),
    "col_params": ("parameters", "参数"),
    "col_sample": ("sample", "样本"),
    "col_step": ("step", "步"),
    "col_samples": ("samples", "样本"),
    "col_loss": ("E (before the update)", "E（更新前）"),
    "col_param": ("parameter", "参数"),
    "col_before": ("before", "更新前"),
    "col_grad": ("dE/dparameter", "dE/d参数"),
    "col_after": ("after", "更新后"),
    "col_value": ("value", "值"),
    "col_node": ("node", "节点"),
    "col_gate": ("gate", "门"),
    "col_expression": ("expression", "表达式"),
    "col_output": ("output", "输出"),
    "col_window": ("window", "窗口"),
    "col_argmax": ("argmax at", "最大值位置"),
    "col_mean": ("mean = sum / {n}", "平均 = 和 / {n}"),
    "col_upstream": ("upstream gradient", "上游梯度"),
    "col_each_gets": ("each input gets", "每个输入得到"),
    "col_inputs": ("inputs", "输入"),
    "not_trained": (" (not trained)", "（不训练）"),
    "inputs_targets": ("inputs and targets", "输入与目标"),
    "targets": ("targets", "目标"),
    # the loss
    "loss_line": (
        "Loss: {name}, reduction {r!r} over the mini-batch.",
        "损失函数：{name}，对小批量的归约方式为 {r!r}。",
    ),
    "loss_mse_half": ("squared error with the 1/2 convention", "带 1/2 系数的平方误差"),
    "loss_mse": (
        "mean squared error (as torch.nn.functional.mse_loss)",
        "均方误差（同 torch.nn.functional.mse_loss）",
    ),
    "loss_bce": ("binary cross entropy", "二元交叉熵"),
    "loss_ce": (
        "softmax + categorical cross entropy (computed from net by log_softmax)",
        "softmax + 多类交叉熵（由 net 经 log_softmax 计算）",
    ),
    "input": ("input", "输入"),
    # rules
    "facts_engine": (
        "Every number below is a value the deltaprop engine produced: forward values, .grad "
        "after backward(), the local derivatives of its ops, and the weights after the update "
        "by {opt}.",
        "下面每个数都由 deltaprop 引擎算出：前向的值、backward() 之后的 .grad、各运算的局部导数，"
        "以及 {opt} 更新后的权重。",
    ),
    "facts_lr": (
        "Learning rate eta = {lr}; {n} step(s) of gradient descent ({mode}); biases {b} "
        "trained; dtype {dtype}.",
        "学习率 eta = {lr}；梯度下降 {n} 步（{mode}）；偏置{b}训练；数据类型 {dtype}。",
    ),
    "are": ("are", ""),
    "are_not": ("are not", "不"),
    "online": ("online learning: one sample per update", "在线学习：每次更新一个样本"),
    "minibatch": ("mini-batch of m = {m} samples per update", "小批量：每次更新 m = {m} 个样本"),
    "one_sample": ("one sample", "一个样本"),
    "out_delta_rule": (
        "Output neurons: delta_j = dE/dnet_j = dE/do_j * do_j/dnet_j; the first factor comes from "
        "the loss, the second from the activation (both are the engine's values: o.grad and the "
        "local derivative of its op).",
        "输出层神经元：delta_j = dE/dnet_j = dE/do_j * do_j/dnet_j；第一个因子来自损失函数，"
        "第二个来自激活函数（两者都是引擎的值：o.grad 与该运算的局部导数）。",
    ),
    "ce_rule": (
        "Output neurons: delta_j = dE/dnet_j; E is computed from net by log_softmax, and the "
        "engine's net.grad is o_j - t_j{mean}.",
        "输出层神经元：delta_j = dE/dnet_j；E 由 net 经 log_softmax 算出，引擎的 net.grad 为 "
        "o_j - t_j{mean}。",
    ),
    "softmax_rule": (
        "Output neurons: delta_j = dE/dnet_j = sum_k dE/do_k * do_k/dnet_j, with the softmax "
        "Jacobian do_k/dnet_j = o_k ([k=j] - o_j); dE/do_k is the engine's o.grad.",
        "输出层神经元：delta_j = dE/dnet_j = sum_k dE/do_k * do_k/dnet_j，softmax 的雅可比矩阵为 "
        "do_k/dnet_j = o_k ([k=j] - o_j)；dE/do_k 是引擎的 o.grad。",
    ),
    "cancel_bce": (
        "Cancellation: for a sigmoid output with binary cross entropy, dE/do = (o - t) / "
        "(o (1 - o)) and do/dnet = o (1 - o) cancel, so delta = o - t{mean}.",
        "相消：sigmoid 输出配二元交叉熵时，dE/do = (o - t) / (o (1 - o)) 与 do/dnet = o (1 - o) "
        "相消，所以 delta = o - t{mean}。",
    ),
    "cancel_ce": (
        "Cancellation: the Jacobian of the softmax and the derivative of the log cancel, so "
        "delta = o - t{mean}.",
        "相消：softmax 的雅可比矩阵与 log 的导数相消，所以 delta = o - t{mean}。",
    ),
    "over_m": (
        " divided by the batch size m (the loss is a mean)",
        "，再除以批大小 m（损失取平均）",
    ),
    "over_mk": (
        " divided by m K (the loss is a mean over the m K outputs)",
        "，再除以 m K（损失对 m K 个输出取平均）",
    ),
    "hidden_rule": (
        "Hidden neurons: delta_j = (sum_l delta_l * w_jl) * f'(net_j): the deltas of the next "
        "layer flow back through the same weights that carried the activations forward (before "
        "the update). The sum is dE/do_j, the engine's o.grad.",
        "隐藏层神经元：delta_j = (sum_l delta_l * w_j"
        "l) * f'(net_j)：下一层的 delta 沿着前向时传递激活值的"
        "同一组权重（更新前）流回。这个和就是 dE/do_j，即引擎的 o.grad。",
    ),
    "from_next_rule": (
        "delta_j = dE/do_j * f'(net_j); dE/do_j is the gradient that layer {nxt} sends back to "
        "its input (see its backward pass).",
        "delta_j = dE/do_j * f'(net_j)；dE/"
        "do_j 是第 {nxt} 层传回其输入的梯度（见该层的反向传播）。",
    ),
    "grad_rule": (
        "Weight gradients: dE/dw_ij = delta_j * o_i (summed over the samples of the mini-batch), "
        "and dE/db_j = delta_j.",
        "权重梯度：dE/dw_ij = delta_j * o_i（对小批量的样本求和），dE/db_j = delta_j。",
    ),
    "update_rule": (
        "Gradient descent: w <- w - eta * dE/dw for every weight and bias (done by {opt}; the new "
        "values are read back from the engine).",
        "梯度下降：对每个权重和偏置 w <- w - eta * dE/dw（由 {opt} 完成；新值从引擎读回）。",
    ),
    "no_bias_training": (
        "train_biases = false: the biases keep their values.",
        "train_biases = false：偏置保持不变。",
    ),
    "see_table": ("(samples {a} to {b}: see the table)", "（样本 {a} 到 {b}：见表）"),
    # normalization
    "norm_fwd": (
        "Normalization over {over}: mean mu, variance var (biased, 1/N), xhat = (x - mu) / "
        "sqrt(var + eps) with eps = {eps}, then y = gamma * xhat + beta.",
        "在{over}上归一化：均值 mu、方差 var（有偏，1/N）、xhat = (x - mu) / sqrt(var + eps)，"
        "eps = {eps}，然后 y = gamma * xhat + beta。",
    ),
    "over_sample": (
        "the {n} features of each sample (N = {n})",
        "每个样本的 {n} 个特征（N = {n}）",
    ),
    "over_batch": (
        "the mini-batch, per {unit} (N = {n} values)",
        "小批量上、按每个{unit}（N = {n} 个值）",
    ),
    "norm_bwd": (
        "Backward: g = dE/dy * gamma = dE/dxhat. x reaches E along three paths, through xhat "
        "directly, through the mean and through the variance; the three parts add up to the "
        "closed form dx = (1/sigma) (g - mean(g) - xha"
        "t * mean(g * xhat)), sigma = sqrt(var + eps).",
        "反向：g = dE/dy * gamma = dE/dxhat。"
        "x 经三条路径影响 E：直接经过 xhat、经过均值、经过方差；"
        "三部分之和就是闭式 dx = (1/sigma) (g - mean(g) - xha"
        "t * mean(g * xhat))，sigma = sqrt(var + eps)。",
    ),
    "norm_params": (
        "dE/dgamma = sum dE/dy * xhat, dE/dbeta = sum dE/dy{over}.",
        "dE/dgamma = sum dE/dy * xhat，dE/dbeta = sum dE/dy{over}。",
    ),
    # pooling, dropout
    "maxpool_fwd": (
        "Each {kh} x {kw} window (stride {s}) keeps its largest value; the position of the "
        "maximum (row, col, counted from 1) is remembered for the backward pass.",
        "每个 {kh} x {kw} 窗口（步长 {s}）保留最大"
        "值；最大值的位置（行、列，从 1 数起）留给反向传播使用。",
    ),
    "avgpool_fwd": (
        "Each {kh} x {kw} window (stride {s}) is replaced by the mean of its {n} values.",
        "每个 {kh} x {kw} 窗口（步长 {s}）被替换为其 {n} 个值的平均。",
    ),
    "maxpool_bwd": (
        "The max gate routes each upstream gradient to the position of its window's maximum; "
        "every other input gets 0.",
        "max 门把每个上游梯度送到其窗口最大值的位置；其余输入得到 0。",
    ),
    "avgpool_bwd": (
        "Average pooling spreads each upstream gradient evenly: every input of the window "
        "receives 1/(kh*kw) = 1/{n} of it (inputs in several windows add up).",
        "平均池化把每个上游梯度平均分配：窗口中每个输入得到它的 1"
        "/(kh*kw) = 1/{n}（属于多个窗口的输入累加）。",
    ),
    "dropout_fwd": (
        "Inverted dropout with p = {p}: each unit is kept with probability 1 - p and scaled by "
        "1/(1 - p) = {scale}, or dropped (0). The mask was drawn by the engine{seed}.",
        "反向缩放的 dropout，p = {p}：每个单元以 1 - p 的"
        "概率保留并乘以 1/(1 - p) = {scale}，否则丢弃（0）。"
        "掩码由引擎抽取{seed}。",
    ),
    "dropout_bwd": (
        "The gradient goes back through the same mask: dE/dx = dE/dy * mask (a dropped unit "
        "passes no gradient back).",
        "梯度经过同一个掩码传回：dE/dx = dE/dy * mask（被丢弃的单元不传回梯度）。",
    ),
    "conv_act": (
        "delta = dE/do * f'(net), elementwise ({act}); dE/do comes from the next layer:",
        "delta = dE/do * f'(net)，逐元素（{act}）；dE/do 来自下一层：",
    ),
    "linear_act": (
        "Linear activation: delta = dE/dnet = dE/do, from the next layer.",
        "线性激活：delta = dE/dnet = dE/do，来自下一层。",
    ),
    "matrix_intro": (
        "Matrix form of the notes for the mini-batch (rows = samples): I = X W + b, O = f(I); "
        "W is stored as inputs x neurons here (the transpose of nn.Linear's weight).",
        "讲义中的小批量矩阵形式（每行一个样本）：I = X W + b，O = f(I)；这里 W 按 输入 x 神经元 "
        "存放（nn.Linear 权重的转置）。",
    ),
    "matrix_bwd": (
        "D = dE/dI, one row per sample; Delta W = O_prev^T D, Delta b = column sums of D; "
        "D of a hidden layer = (D_next W_next^T) * f'(I) (elementwise).",
        "D = dE/dI，每行一个样本；Delta W = O_prev^T D，Delta b = D 的列和；隐藏层的 "
        "D = (D_next W_next^T) * f'(I)（逐元素）。",
    ),
    # convolution
    "im2col": (
        "im2col: each {kh} x {kw} receptive field of the input becomes one row of cols "
        "({r} x {c}); the kernels are the columns of Wmat ({wr} x {wc}). The convolution is one "
        "matrix product, net = cols @ Wmat + b (stride {s}, padding {p}; rows are labelled by "
        "output position (row,col), columns by kernel entry (row,col), counted from 1).",
        "im2col：输入的每个 {kh} x {kw} 感受野成为 cols 的一行（{r} x {c}）；卷积核是 Wmat 的列"
        "（{wr} x {wc}）。卷积就是一次矩阵乘法 net = cols @ Wmat + b（步长 {s}，填充 {p}；"
        "行按输出位置 (行,列) 标注，列按卷积核元素 (行,列) 标注，从 1 数起）。",
    ),
    "conv_elementwise": ("o = {act}(net), elementwise:", "o = {act}(net)，逐元素："),
    "conv_dw": (
        "Unrolled like the output positions, delta is the matrix dY (one row per position, one "
        "column per kernel). The kernel gradient is the GEMM dW = cols^T @ dY; the bias gradient "
        "sums dY over the positions.",
        "按输出位置展开，delta 成为矩阵 dY（每个位置一行，每个卷积核一列）。卷积核的梯度是矩阵乘法 "
        "dW = cols^T @ dY；偏置的梯度是 dY 在各位置上的和。",
    ),
    "conv_dx": (
        "dX = col2im(dY @ Wmat^T): each row of dcols = dY @ Wmat^T belongs to one receptive "
        "field; col2im scatters it back onto the input, and where windows overlap the "
        "contributions add up (dcols[output position; kernel entry]):",
        "dX = col2im(dY @ Wmat^T)：dcols = dY @ Wmat^T 的每一行属于一个感受野；col2im "
        "把它散回输入上，窗口重叠处的贡献相加（dcols[输出位置; 卷积核元素]）：",
    ),
    "batch_matrices": (
        "D{L} = dE/dNET{L} (rows = samples), dE/dW{L} = D{L}^T {prev} (shaped as W: neurons x "
        "inputs), dE/db{L} = column sums of D{L}.",
        "D{L} = dE/dNET{L}（每行一个样本），dE/dW{L} = D{L}^T {prev}（形状同 W：神经元 x "
        "输入），dE/db{L} = D{L} 的列和。",
    ),
    # circuits
    "circuit_intro": (
        "The circuit {expr!r} as a graph of gates, run forward and backward by the deltaprop "
        "engine. Each gate multiplies the gradient arriving from above (upstream) by its local "
        "derivative; where a value feeds several gates, the gradients add up.",
        "电路 {expr!r} 是一张由门组成的图，由 deltaprop 引擎前向、反向计算。每个门把从上游传来的"
        "梯度乘以它的局部导数；一个值流入多个门时，梯度相加。",
    ),
    "circuit_accumulate": (
        "Values that feed several gates: their gradients add up (the engine accumulates them "
        "into .grad).",
        "流入多个门的值：它们的梯度相加（引擎把它们累加到 .grad 中）。",
    ),
    "gate_add": (
        "add gate: distributes the upstream gradient to both inputs",
        "加法门：把上游梯度原样分给两个输入",
    ),
    "gate_sub": (
        "sub gate: passes the gradient to a, and its negative to b",
        "减法门：把梯度传给 a，把它的相反数传给 b",
    ),
    "gate_mul": (
        "mul gate: each input gets the upstream gradient times the other input (swaps)",
        "乘法门：每个输入得到上游梯度乘以另一个输入（交换）",
    ),
    "gate_div": (
        "div gate: d(a/b)/da = 1/b, d(a/b)/db = -a/b^2",
        "除法门：d(a/b)/da = 1/b，d(a/b)/db = -a/b^2",
    ),
    "gate_pow": ("pow gate: d(x^p)/dx = p x^(p-1)", "幂门：d(x^p)/dx = p x^(p-1)"),
    "gate_neg": ("neg gate: flips the sign", "取负门：改变符号"),
    "gate_exp": (
        "exp gate: local derivative e^x, the gate's own output",
        "指数门：局部导数 e^x，即门自身的输出",
    ),
    "gate_log": ("log gate: local derivative 1/x", "对数门：局部导数 1/x"),
    "gate_sqrt": ("sqrt gate: local derivative 1/(2 sqrt(x))", "平方根门：局部导数 1/(2 sqrt(x))"),
    "gate_sigmoid": (
        "sigmoid gate: local derivative s (1 - s), one gate instead of four",
        "sigmoid 门：局部导数 s (1 - s)，一个门代替四个",
    ),
    "gate_tanh": ("tanh gate: local derivative 1 - t^2", "tanh 门：局部导数 1 - t^2"),
    "gate_relu": ("relu gate: passes the gradient where x > 0", "relu 门：在 x > 0 处传递梯度"),
    "gate_abs": ("abs gate: local derivative sign(x)", "绝对值门：局部导数 sign(x)"),
    "gate_max": (
        "max gate: routes the whole gradient to the larger input (ties split it)",
        "max 门：把全部梯度送给较大的输入（相等时平分）",
    ),
    "gate_min": (
        "min gate: routes the whole gradient to the smaller input (ties split it)",
        "min 门：把全部梯度送给较小的输入（相等时平分）",
    ),
    "closed_form": ("closed form", "闭式"),
    "dropped": ("dropped", "丢弃"),
    "over_samples": (" over the samples", "（对样本求和）"),
    "over_batch_sum": (" over the mini-batch", "（对小批量求和）"),
    "check_text": (
        "Central finite differences (E(p + eps) - E(p - eps)) / (2 eps), eps = {eps}, in float64, "
        "for all {n} gradients (weights, biases and deltas): largest discrepancy {err} at {where} "
        "(backprop {a}, finite differences {b}): {status}.",
        "中心差分 (E(p + eps) - E(p - eps)) / (2 eps)，eps = {eps}，float64，检验全部 {n} 个梯度"
        "（权重、偏置和 delta）：最大差异 {err}，位于 {where}"
        "（反向传播 {a}，差分 {b}）：{status}。",
    ),
}


class Words:
    """``Words(lang)(key, **values)``: the phrase ``key`` in ``lang``, with the values filled in."""

    def __init__(self, lang: str = "en") -> None:
        if lang not in LANGS:
            raise ValueError(f"lang must be one of {', '.join(LANGS)}, got {lang!r}")
        self.lang = lang
        self._k = LANGS.index(lang)

    def __call__(self, key: str, **values: object) -> str:
        return _WORDS[key][self._k].format(**values)
