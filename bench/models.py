"""PyTorch definitions of the benchmark models, written for kiln's bench (not copied from
the projects that publish them): Real-ESRGAN's SRVGGNetCompact, ESRGAN's RRDBNet (x4plus
configuration), torchvision's ResNet-50 and EDVR-M (BasicSR's EDVR defaults: PCD alignment with
modulated deformable convs, TSA fusion), plus seeded random initialisation that keeps
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


# --- EDVR-M (Wang et al. 2019, "EDVR: Video Restoration with Enhanced Deformable Convolutional
# Networks"; the configuration of BasicSR's EDVR with its defaults: 64 features, 5 frames, 8
# deformable groups, 5 extraction blocks, 10 reconstruction blocks, centre frame 2, no predeblur,
# low-resolution input, TSA fusion) ------------------------------------------------------------------
#
# FLOPs at 1x5x3x180x320 (count_flops below; 2 FLOP per multiply-add of every conv and of the GEMM
# of every deformable conv; bilinear sampling, activations, pooling and resizes not counted):
# 973.6 GFLOP (486.8 GMAC), the 974 GFLOP. 3.3 M parameters.

class ResidualBlockNoBN(nn.Module):
    """conv3x3 - ReLU - conv3x3, plus the input (residual scale 1, no normalisation)."""

    def __init__(self, num_feat=64):
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(x)))


class DCNv2Pack(nn.Module):
    """Modulated deformable conv (DCNv2) whose offsets and mask come from a second tensor (EDVR's
    alignment features), not from the conv's own input.

    conv_offset (3x3, in_ch -> deformable_groups*3*k*k) on `feat`; its output is cut into three
    equal parts o1, o2, m along channels; offset = cat(o1, o2) (2*dg*k*k channels, torchvision's
    (dy, dx) pairs per group and tap), mask = sigmoid(m); then torchvision's deform_conv2d of x.
    The exporters write torchvision::deform_conv2d as ONNX DeformConv (opset 19).
    BasicSR also logs a warning when the mean |offset| exceeds 50; that check (a data-dependent
    branch, no effect on the output) is left out.
    """

    def __init__(self, in_ch, out_ch, kernel_size=3, padding=1, deformable_groups=8):
        super().__init__()
        k = kernel_size
        self.stride, self.padding, self.dilation = (1, 1), (padding, padding), (1, 1)
        self.weight = nn.Parameter(torch.empty(out_ch, in_ch, k, k))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.conv_offset = nn.Conv2d(in_ch, deformable_groups * 3 * k * k, k, 1, padding)

    def forward(self, x, feat):
        import torchvision.ops

        o1, o2, m = torch.chunk(self.conv_offset(feat), 3, dim=1)
        return torchvision.ops.deform_conv2d(x, torch.cat((o1, o2), dim=1), self.weight, self.bias,
                                             stride=self.stride, padding=self.padding,
                                             dilation=self.dilation, mask=torch.sigmoid(m))


class PCDAlignment(nn.Module):
    """Pyramid, cascading and deformable alignment of one neighbour frame's features to the
    reference (centre) frame's, on three levels (L1 full, L2 1/2, L3 1/4 resolution).

    From L3 up: offset features = lrelu(conv(cat(nbr, ref))), then (L3) lrelu(conv) or (L2, L1)
    lrelu(conv(cat(., 2 x upsampled offset features of the level below))) and lrelu(conv);
    aligned = DCN(nbr, offset features); on L2 and L1 fused with the upsampled aligned features
    of the level below by a conv on their concatenation; lrelu on L3 and L2. Upsampling is
    bilinear x2, align_corners=False. Cascade on L1: offset features from cat(aligned, ref) through
    two conv+lrelu, then lrelu(DCN(aligned, offset features)).
    """

    def __init__(self, num_feat=64, deformable_groups=8):
        super().__init__()
        c = num_feat
        self.offset_conv1 = nn.ModuleDict()
        self.offset_conv2 = nn.ModuleDict()
        self.offset_conv3 = nn.ModuleDict()
        self.dcn_pack = nn.ModuleDict()
        self.feat_conv = nn.ModuleDict()
        for i in (3, 2, 1):
            lv = f"l{i}"
            self.offset_conv1[lv] = nn.Conv2d(2 * c, c, 3, 1, 1)
            if i == 3:
                self.offset_conv2[lv] = nn.Conv2d(c, c, 3, 1, 1)
            else:
                self.offset_conv2[lv] = nn.Conv2d(2 * c, c, 3, 1, 1)
                self.offset_conv3[lv] = nn.Conv2d(c, c, 3, 1, 1)
                self.feat_conv[lv] = nn.Conv2d(2 * c, c, 3, 1, 1)
            self.dcn_pack[lv] = DCNv2Pack(c, c, 3, padding=1, deformable_groups=deformable_groups)
        self.cas_offset_conv1 = nn.Conv2d(2 * c, c, 3, 1, 1)
        self.cas_offset_conv2 = nn.Conv2d(c, c, 3, 1, 1)
        self.cas_dcnpack = DCNv2Pack(c, c, 3, padding=1, deformable_groups=deformable_groups)

    @staticmethod
    def _up(t):
        return F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=False)

    def forward(self, nbr, ref):
        """nbr, ref: [L1, L2, L3] feature maps (b, c, h, w) of the neighbour and the reference."""
        lrelu = lambda t: F.leaky_relu(t, 0.1)
        up_off = up_feat = None
        feat = None
        for i in (3, 2, 1):
            lv = f"l{i}"
            off = lrelu(self.offset_conv1[lv](torch.cat([nbr[i - 1], ref[i - 1]], dim=1)))
            if i == 3:
                off = lrelu(self.offset_conv2[lv](off))
            else:
                off = lrelu(self.offset_conv2[lv](torch.cat([off, up_off], dim=1)))
                off = lrelu(self.offset_conv3[lv](off))
            feat = self.dcn_pack[lv](nbr[i - 1], off)
            if i < 3:
                feat = self.feat_conv[lv](torch.cat([feat, up_feat], dim=1))
            if i > 1:
                feat = lrelu(feat)
                up_off = self._up(off) * 2  # offsets double with the resolution
                up_feat = self._up(feat)
        off = torch.cat([feat, ref[0]], dim=1)
        off = lrelu(self.cas_offset_conv2(lrelu(self.cas_offset_conv1(off))))
        return lrelu(self.cas_dcnpack(feat, off))


class TSAFusion(nn.Module):
    """Temporal and spatial attention fusion of the aligned features (b, t, c, h, w) -> (b, c, h, w).

    Temporal: per-pixel dot product over channels of each frame's embedding (conv) with the centre
    frame's embedding (another conv), sigmoid, multiplies that frame's features. Fusion: 1x1 conv
    over all frames + lrelu. Spatial: a two-level pyramid of max+avg pooling (3x3, stride 2, pad 1)
    with 1x1/3x3 convs, bilinear x2 back up; feat * sigmoid(attn) * 2 + attn_add.
    """

    def __init__(self, num_feat=64, num_frame=5, center_frame_idx=2):
        super().__init__()
        c, t = num_feat, num_frame
        self.center_frame_idx = center_frame_idx
        self.temporal_attn1 = nn.Conv2d(c, c, 3, 1, 1)
        self.temporal_attn2 = nn.Conv2d(c, c, 3, 1, 1)
        self.feat_fusion = nn.Conv2d(t * c, c, 1, 1)
        self.max_pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.avg_pool = nn.AvgPool2d(3, stride=2, padding=1)  # count_include_pad=True, as BasicSR
        self.spatial_attn1 = nn.Conv2d(t * c, c, 1)
        self.spatial_attn2 = nn.Conv2d(2 * c, c, 1)
        self.spatial_attn3 = nn.Conv2d(c, c, 3, 1, 1)
        self.spatial_attn4 = nn.Conv2d(c, c, 1)
        self.spatial_attn5 = nn.Conv2d(c, c, 3, 1, 1)
        self.spatial_attn_l1 = nn.Conv2d(c, c, 1)
        self.spatial_attn_l2 = nn.Conv2d(2 * c, c, 3, 1, 1)
        self.spatial_attn_l3 = nn.Conv2d(c, c, 3, 1, 1)
        self.spatial_attn_add1 = nn.Conv2d(c, c, 1)
        self.spatial_attn_add2 = nn.Conv2d(c, c, 1)

    def forward(self, aligned):
        lrelu = lambda t: F.leaky_relu(t, 0.1)
        up = lambda t: F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=False)
        b, t, c, h, w = aligned.shape
        emb_ref = self.temporal_attn1(aligned[:, self.center_frame_idx])
        emb = self.temporal_attn2(aligned.reshape(b * t, c, h, w)).reshape(b, t, c, h, w)
        corr = torch.cat([torch.sum(emb[:, i] * emb_ref, 1).unsqueeze(1) for i in range(t)], dim=1)
        prob = torch.sigmoid(corr).unsqueeze(2).expand(b, t, c, h, w).reshape(b, t * c, h, w)
        aligned = aligned.reshape(b, t * c, h, w) * prob

        feat = lrelu(self.feat_fusion(aligned))

        attn = lrelu(self.spatial_attn1(aligned))
        attn = lrelu(self.spatial_attn2(torch.cat([self.max_pool(attn), self.avg_pool(attn)], dim=1)))
        lvl = lrelu(self.spatial_attn_l1(attn))
        lvl = lrelu(self.spatial_attn_l2(torch.cat([self.max_pool(lvl), self.avg_pool(lvl)], dim=1)))
        lvl = up(lrelu(self.spatial_attn_l3(lvl)))
        attn = lrelu(self.spatial_attn3(attn)) + lvl
        attn = up(lrelu(self.spatial_attn4(attn)))
        attn = self.spatial_attn5(attn)
        attn_add = self.spatial_attn_add2(lrelu(self.spatial_attn_add1(attn)))
        return feat * torch.sigmoid(attn) * 2 + attn_add


class EDVR(nn.Module):
    """EDVR-M video super-resolution x4: input (b, t, 3, h, w) (h, w multiples of 4), output
    (b, 3, 4h, 4w) for the centre frame.

    Per frame: conv_first + lrelu, num_extract_block residual blocks (L1), stride-2 conv + conv
    (L2), again (L3), all with lrelu(0.1). PCD alignment of every frame (the centre one too) to
    the centre frame, TSA fusion, num_reconstruct_block residual blocks, two (conv 64->256,
    PixelShuffle x2, lrelu), conv_hr + lrelu, conv_last, plus the bilinear x4 (align_corners=False)
    upsampled centre frame.

    `channels_last = True` puts the per-frame 4-D tensors in channels_last inside forward: the 5-D
    input has no channels_last form (PyTorch eager fp16 channels_last and torch.compile use this).
    """

    def __init__(self, num_in_ch=3, num_out_ch=3, num_feat=64, num_frame=5, deformable_groups=8,
                 num_extract_block=5, num_reconstruct_block=10, center_frame_idx=2):
        super().__init__()
        c = num_feat
        self.center_frame_idx = num_frame // 2 if center_frame_idx is None else center_frame_idx
        self.num_frame = num_frame
        self.channels_last = False
        self.conv_first = nn.Conv2d(num_in_ch, c, 3, 1, 1)
        self.feature_extraction = nn.Sequential(*[ResidualBlockNoBN(c) for _ in range(num_extract_block)])
        self.conv_l2_1 = nn.Conv2d(c, c, 3, 2, 1)
        self.conv_l2_2 = nn.Conv2d(c, c, 3, 1, 1)
        self.conv_l3_1 = nn.Conv2d(c, c, 3, 2, 1)
        self.conv_l3_2 = nn.Conv2d(c, c, 3, 1, 1)
        self.pcd_align = PCDAlignment(c, deformable_groups)
        self.fusion = TSAFusion(c, num_frame, self.center_frame_idx)
        self.reconstruction = nn.Sequential(*[ResidualBlockNoBN(c) for _ in range(num_reconstruct_block)])
        self.upconv1 = nn.Conv2d(c, c * 4, 3, 1, 1)
        self.upconv2 = nn.Conv2d(c, 64 * 4, 3, 1, 1)
        self.pixel_shuffle = nn.PixelShuffle(2)
        self.conv_hr = nn.Conv2d(64, 64, 3, 1, 1)
        self.conv_last = nn.Conv2d(64, num_out_ch, 3, 1, 1)

    def forward(self, x):
        lrelu = lambda t: F.leaky_relu(t, 0.1)
        b, t, c, h, w = x.shape
        ci = self.center_frame_idx
        x_center = x[:, ci]
        frames = x.reshape(b * t, c, h, w)
        if self.channels_last:
            frames = frames.contiguous(memory_format=torch.channels_last)
        f1 = self.feature_extraction(lrelu(self.conv_first(frames)))
        f2 = lrelu(self.conv_l2_2(lrelu(self.conv_l2_1(f1))))
        f3 = lrelu(self.conv_l3_2(lrelu(self.conv_l3_1(f2))))
        f1 = f1.reshape(b, t, -1, h, w)
        f2 = f2.reshape(b, t, -1, h // 2, w // 2)
        f3 = f3.reshape(b, t, -1, h // 4, w // 4)
        ref = [f1[:, ci], f2[:, ci], f3[:, ci]]
        aligned = torch.stack([self.pcd_align([f1[:, i], f2[:, i], f3[:, i]], ref) for i in range(t)], dim=1)
        out = self.reconstruction(self.fusion(aligned))
        out = lrelu(self.pixel_shuffle(self.upconv1(out)))
        out = lrelu(self.pixel_shuffle(self.upconv2(out)))
        out = self.conv_last(lrelu(self.conv_hr(out)))
        return out + F.interpolate(x_center, scale_factor=4, mode="bilinear", align_corners=False)


@torch.no_grad()
def count_flops(model, x):
    """FLOPs of one forward pass (2 per multiply-add) of every nn.Conv2d and of the GEMM part of
    every DCNv2Pack (as a dense conv of its weight); bilinear sampling, elementwise ops, pooling
    and resizes are not counted. Returns (total, {module class: flops})."""
    per = {}

    def hook(mod, inp, out):
        k = mod.weight.shape[1] * mod.weight.shape[2] * mod.weight.shape[3]  # in/groups * kh * kw
        f = 2 * out.numel() * k
        key = type(mod).__name__
        per[key] = per.get(key, 0) + f

    hs = []
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, DCNv2Pack)):
            hs.append(m.register_forward_hook(hook))
    try:
        model(x)
    finally:
        for h in hs:
            h.remove()
    return sum(per.values()), per


# --- construction and initialisation ----------------------------------------------------------------

MODEL_NAMES = ("animevideov3", "general-x4v3", "rrdbnet-x4plus", "resnet50", "edvr-m")


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
    if name == "edvr-m":  # EDVR-M, BasicSR's EDVR with its default arguments
        return EDVR()
    raise ValueError(f"unknown model '{name}' (known: {', '.join(MODEL_NAMES)})")


@torch.no_grad()
def _calibrate_convs(model, x, target_std=1.0, last=None, last_std=0.25, stds=None):
    """One forward pass in which every conv, in execution order, rescales its weight and bias so
    that its output has standard deviation target_std on x (conv is linear, so scaling the
    output in the hook equals running the rescaled conv). Default init shrinks the signal by
    ~5x per layer over 16-70 layers; this keeps every layer's output O(1) so that a wrong
    kernel shows in the final output instead of vanishing under the biases.
    stds: {module: std} overrides for some modules. A DCNv2Pack is calibrated like a conv (its
    output is linear in its weight and bias for fixed offsets and mask); its conv_offset is a
    conv of its own and runs first. A module run several times is calibrated on its first run."""
    stds = stds or {}
    handles = []

    def hook(mod, inp, out):
        if getattr(mod, "_kiln_calibrated", False):
            return None
        mod._kiln_calibrated = True
        s = out.float().std().item()
        if not math.isfinite(s) or s <= 0:
            return None
        f = stds.get(mod, last_std if mod is last else target_std) / s
        mod.weight.mul_(f)
        if mod.bias is not None:
            mod.bias.mul_(f)
        return out * f

    for m in model.modules():
        if isinstance(m, (nn.Conv2d, DCNv2Pack)):
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
    [0,1) input). EDVR-M: the same, at 5x64x64, with its deformable convs calibrated too, DCN
    offsets of std EDVR_OFFSET_STD pixels and temporal-attention embeddings of std 0.25. ResNet-50: torchvision's init, random BatchNorm affine parameters, running
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
        if isinstance(m, (nn.Conv2d, DCNv2Pack)):
            fan_in = m.weight.shape[1] * m.weight.shape[2] * m.weight.shape[3]
            m.weight.copy_(torch.empty(m.weight.shape).normal_(0.0, 1.0 / math.sqrt(fan_in), generator=g))
            if m.bias is not None:
                m.bias.copy_(torch.empty(m.bias.shape).uniform_(-0.05, 0.05, generator=g))
            if isinstance(m, nn.Conv2d):
                last = m
        elif isinstance(m, nn.PReLU):
            m.weight.copy_(torch.empty(m.weight.shape).uniform_(0.1, 0.3, generator=g))
    model.eval()
    stds = {}
    if isinstance(model, EDVR):
        # offsets ~ N(0, 1.5^2) pixels (|offset| mostly under 3-4 px, so the bilinear taps move
        # across pixels but stay near the image), masks sigmoid(N(0, 1.5^2)); the temporal
        # embeddings small enough that the 64-channel dot products do not saturate the sigmoid
        for m in model.modules():
            if isinstance(m, DCNv2Pack):
                stds[m.conv_offset] = EDVR_OFFSET_STD
        stds[model.fusion.temporal_attn1] = stds[model.fusion.temporal_attn2] = 0.25
        last = model.conv_last
        x = torch.rand((1, model.num_frame, 3, 64, 64), generator=g).to(device)
    else:
        x = torch.rand((1, 3, 64, 64), generator=g).to(device)
    _calibrate_convs(model, x, target_std=1.0, last=last, last_std=0.25, stds=stds)
    return model


EDVR_OFFSET_STD = 1.5  # pixels: standard deviation of the DCN offsets after calibration


def to_channels_last(model, x):
    """The fp16 channels_last variant of a model and its input (PyTorch eager and torch.compile).
    EDVR's input is 5-D, which has no channels_last form: the model converts its per-frame 4-D
    tensors instead, and the input stays contiguous."""
    model = model.to(memory_format=torch.channels_last)
    if isinstance(model, EDVR):
        model.channels_last = True
        return model, x.contiguous()
    return model, x.contiguous(memory_format=torch.channels_last)


def make_model(name, device, seed=0):
    torch.manual_seed(seed)
    return init_weights(name, build_model(name), device, seed=seed)


def count_params(model):
    return sum(p.numel() for p in model.parameters())
