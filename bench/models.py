"""PyTorch definitions of the benchmark models, written for kiln's bench (not copied from
the projects that publish them): Real-ESRGAN's SRVGGNetCompact, ESRGAN's RRDBNet (x4plus
configuration) and torchvision's ResNet-50, plus seeded random initialisation that keeps
activations in a sane range (no trained weights are used: speed does not depend on the
values, and accuracy is measured against PyTorch on the same random weights).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


# --- SRVGGNetCompact (Real-ESRGAN: realesr-animevideov3, realesr-general-x4v3) -------------------

class SRVGGNetCompact(nn.Module):
    """A plain VGG-style stack at the input resolution, then PixelShuffle up to scale,
    plus the nearest-upsampled input (the network learns the residual).

    conv3x3(in->feat)+PReLU, num_conv x (conv3x3(feat->feat)+PReLU),
    conv3x3(feat->out*scale^2), PixelShuffle(scale), + nearest(x, scale).
    PReLU has one slope per channel.
    """

    def __init__(self, num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=16, upscale=4):
        super().__init__()
        self.upscale = upscale
        layers = [nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), nn.PReLU(num_parameters=num_feat)]
        for _ in range(num_conv):
            layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.PReLU(num_parameters=num_feat)]
        layers.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.body = nn.Sequential(*layers)
        self.upsampler = nn.PixelShuffle(upscale)

    def forward(self, x):
        out = self.upsampler(self.body(x))
        return out + F.interpolate(x, scale_factor=self.upscale, mode="nearest")


# --- RRDBNet (ESRGAN / Real-ESRGAN x4plus) --------------------------------------------------------

class ResidualDenseBlock(nn.Module):
    """Five 3x3 convs; each sees the block input concatenated with every earlier output
    (dense connections); LeakyReLU(0.2) after the first four; out = x + 0.2 * conv5."""

    def __init__(self, num_feat=64, num_grow_ch=32):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(num_feat + i * num_grow_ch, num_grow_ch if i < 4 else num_feat, 3, 1, 1) for i in range(5)
        )
        self.lrelu = nn.LeakyReLU(negative_slope=0.2)

    def forward(self, x):
        feats = [x]
        for i, conv in enumerate(self.convs):
            y = conv(torch.cat(feats, 1) if len(feats) > 1 else x)
            if i < 4:
                feats.append(self.lrelu(y))
        return x + 0.2 * y


class RRDB(nn.Module):
    """Residual in residual dense block: three dense blocks, out = x + 0.2 * blocks(x)."""

    def __init__(self, num_feat=64, num_grow_ch=32):
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x):
        return x + 0.2 * self.rdb3(self.rdb2(self.rdb1(x)))


class RRDBNet(nn.Module):
    """ESRGAN x4: conv_first, num_block RRDBs, conv_body (+ long skip), two nearest x2
    upsamplings each followed by conv + LeakyReLU(0.2), conv_hr + LeakyReLU, conv_last."""

    def __init__(self, num_in_ch=3, num_out_ch=3, num_feat=64, num_block=23, num_grow_ch=32):
        super().__init__()
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(num_feat, num_grow_ch) for _ in range(num_block)])
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2)

    def forward(self, x):
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))


# --- construction and initialisation ----------------------------------------------------------------

MODEL_NAMES = ("animevideov3", "general-x4v3", "rrdbnet-x4plus", "resnet50")


def build_model(name):
    """An fp32 model on the CPU with PyTorch's default initialisation (seed before calling)."""
    if name == "animevideov3":  # realesr-animevideov3
        return SRVGGNetCompact(num_conv=16)
    if name == "general-x4v3":  # realesr-general-x4v3
        return SRVGGNetCompact(num_conv=32)
    if name == "rrdbnet-x4plus":  # RealESRGAN_x4plus / ESRGAN x4
        return RRDBNet(num_block=23)
    if name == "resnet50":
        import torchvision

        return torchvision.models.resnet50(weights=None)
    raise ValueError(f"unknown model '{name}' (known: {', '.join(MODEL_NAMES)})")


@torch.no_grad()
def _calibrate_convs(model, x, target_std=1.0, last=None, last_std=0.25):
    """One forward pass in which every conv, in execution order, rescales its weight and bias so
    that its output has standard deviation target_std on x (conv is linear, so scaling the
    output in the hook equals running the rescaled conv). Default init shrinks the signal by
    ~5x per layer over 16-70 layers; this keeps every layer's output O(1) so that a wrong
    kernel shows in the final output instead of vanishing under the biases."""
    handles = []

    def hook(mod, inp, out):
        if getattr(mod, "_kiln_calibrated", False):
            return None
        mod._kiln_calibrated = True
        s = out.float().std().item()
        if not math.isfinite(s) or s <= 0:
            return None
        f = (last_std if mod is last else target_std) / s
        mod.weight.mul_(f)
        if mod.bias is not None:
            mod.bias.mul_(f)
        return out * f

    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(hook))
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
        for m in model.modules():
            if hasattr(m, "_kiln_calibrated"):
                del m._kiln_calibrated


@torch.no_grad()
def init_weights(name, model, device, seed=0):
    """Seeded random weights with activations in a sane range; model ends in eval mode on device.

    SR nets: normal weights, small random biases, per-channel PReLU slopes in [0.1, 0.3], then
    a calibration pass at 64x64 (output std 0.25 from the conv branch, added to the upsampled
    [0,1) input). ResNet-50: torchvision's init, random BatchNorm affine parameters, running
    statistics measured on a random batch (train-mode pass), so BN folding is exercised."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    model.to(device)
    if name == "resnet50":
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.empty(m.weight.shape).uniform_(0.5, 1.5, generator=g))
                m.bias.copy_(torch.empty(m.bias.shape).normal_(0.0, 0.1, generator=g))
                m.reset_running_stats()
                m.momentum = None  # cumulative average: one batch gives exactly its statistics
        x = torch.rand((16, 3, 224, 224), generator=g).to(device)
        model.train()
        model(x)
        model.eval()
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = 0.1
        return model
    last = None
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
            m.weight.copy_(torch.empty(m.weight.shape).normal_(0.0, 1.0 / math.sqrt(fan_in), generator=g))
            if m.bias is not None:
                m.bias.copy_(torch.empty(m.bias.shape).uniform_(-0.05, 0.05, generator=g))
            last = m
        elif isinstance(m, nn.PReLU):
            m.weight.copy_(torch.empty(m.weight.shape).uniform_(0.1, 0.3, generator=g))
    model.eval()
    x = torch.rand((1, 3, 64, 64), generator=g).to(device)
    _calibrate_convs(model, x, target_std=1.0, last=last, last_std=0.25)
    return model


def make_model(name, device, seed=0):
    torch.manual_seed(seed)
    return init_weights(name, build_model(name), device, seed=seed)


def count_params(model):
    return sum(p.numel() for p in model.parameters())
