"""NVIDIA's TF1 network pickles ``(G, D, Gs)``: PGGAN (``G_paper``), StyleGAN (``G_style``),
StyleGAN2 (``G_main`` + ``G_synthesis_stylegan2``), read through realedit.models.unpickle without
executing the source stored in them."""
from __future__ import annotations

import math
from pathlib import Path


from ...errors import FormatError, WeightsError
from ..unpickle import TFNetworkStub
from ..checkpoint import Checkpoint
from .files import _Source, _plain_kwargs
from .layouts import (_PGGAN_FIXED_KWARGS, _SG1_FIXED_KWARGS, _check_fixed, _lod_zero, _resolutions,
                      _sg1_layer_scope, pggan_config_from_state, stylegan2_config_from_state,
                      stylegan2_d_config_from_state, stylegan_config_from_state)


def from_tf(Gs: TFNetworkStub, path: Path, tf_D: TFNetworkStub | None = None) -> Checkpoint:
    func = Gs.build_func_name
    if func == "G_main":
        synth = Gs.components.get("synthesis")
        sfunc = synth.build_func_name if isinstance(synth, TFNetworkStub) else ""
        if sfunc != "G_synthesis_stylegan2":
            raise FormatError(f"{path}: StyleGAN2 TF pickle with synthesis {sfunc!r}; only "
                              f"'G_synthesis_stylegan2' (configs E/F) is supported")
        return _from_tf_stylegan2(Gs, path, tf_D)
    if func == "G_style":
        return _from_tf_stylegan(Gs, path)
    if func == "G_paper":
        return _from_tf_pggan(Gs, path)
    raise FormatError(f"{path}: TF network pickle built by {func!r}, not a known generator")


def _tf_kwargs(net: TFNetworkStub) -> dict:
    kw = dict(net.static_kwargs)
    for comp in net.components.values():
        if isinstance(comp, TFNetworkStub):
            for k, v in comp.static_kwargs.items():
                kw.setdefault(k, v)
    return kw


def _check_tf_kwargs(kw: dict, path: Path):
    if kw.get("label_size", 0):
        raise FormatError(f"{path}: class-conditional generators are not supported")
    if kw.get("num_channels", 3) not in (1, 3):
        raise FormatError(f"{path}: {kw['num_channels']} image channels are not supported")


def _from_tf_stylegan2(Gs: TFNetworkStub, path: Path, tf_D) -> Checkpoint:
    v = _Source(Gs.all_variables(), path, "StyleGAN2 TF network")
    kw = _tf_kwargs(Gs)
    _check_tf_kwargs(kw, path)
    if kw.get("architecture", "skip") != "skip":
        raise FormatError(f"{path}: StyleGAN2 generator architecture {kw['architecture']!r}; only 'skip' is supported")
    res = _resolutions(v.t, r"synthesis/(\d+)x\d+/")
    n_map = len(_resolutions(v.t, r"mapping/Dense(\d+)/weight"))
    sd = {"mapping.w_avg": v("dlatent_avg")}
    for i in range(n_map):
        sd[f"mapping.fc{i}.weight"] = v(f"mapping/Dense{i}/weight").t()
        sd[f"mapping.fc{i}.bias"] = v(f"mapping/Dense{i}/bias")
    sd["synthesis.b4.const"] = v("synthesis/4x4/Const/const")[0]

    def modconv(ours, tf, noise, flip=False):
        w = v(f"{tf}/weight")                                    # [kh, kw, in, out]
        if flip:  # TF's upsampling conv is a transposed conv with the kernel flipped
            w = w.flip(0, 1)
        sd[f"{ours}.weight"] = w.permute(3, 2, 0, 1)
        sd[f"{ours}.bias"] = v(f"{tf}/bias")
        sd[f"{ours}.affine.weight"] = v(f"{tf}/mod_weight").t()
        sd[f"{ours}.affine.bias"] = v(f"{tf}/mod_bias") + 1    # TF adds the 1 at run time
        if noise is not None:
            sd[f"{ours}.noise_strength"] = v(f"{tf}/noise_strength").reshape([])
            sd[f"{ours}.noise_const"] = v(f"synthesis/noise{noise}")[0, 0]

    modconv("synthesis.b4.conv1", "synthesis/4x4/Conv", 0)
    modconv("synthesis.b4.torgb", "synthesis/4x4/ToRGB", None)
    for r in res[1:]:
        l2 = int(math.log2(r))
        modconv(f"synthesis.b{r}.conv0", f"synthesis/{r}x{r}/Conv0_up", 2 * l2 - 5, flip=True)
        modconv(f"synthesis.b{r}.conv1", f"synthesis/{r}x{r}/Conv1", 2 * l2 - 4)
        modconv(f"synthesis.b{r}.torgb", f"synthesis/{r}x{r}/ToRGB", None)
    sd = {k: t.contiguous() for k, t in sd.items()}
    cfg = stylegan2_config_from_state(sd, path, mapping_lr_multiplier=kw.get("mapping_lrmul"),
                                      w_avg_beta=kw.get("dlatent_avg_beta"))
    thunk = None
    if tf_D is not None and tf_D.build_func_name == "D_stylegan2":
        thunk = lambda: _from_tf_stylegan2_D(tf_D, path)  # noqa: E731
    return Checkpoint("stylegan2", cfg, sd, meta={"source_format": "tf-stylegan2", "tf_kwargs": _plain_kwargs(kw)},
                      D_thunk=thunk)


def _from_tf_stylegan2_D(tf_D: TFNetworkStub, path: Path):
    kw = dict(tf_D.static_kwargs)
    if kw.get("architecture", "resnet") != "resnet" or kw.get("label_size", 0):
        return None, None  # only the config-f discriminator maps onto ours; G still loads
    v = _Source(tf_D.all_variables(), path, "StyleGAN2 TF discriminator")
    res = _resolutions(v.t, r"(\d+)x\d+/")
    if not res:
        raise WeightsError(f"{path}: the StyleGAN2 TF discriminator has no variables")
    top = res[-1]
    conv = lambda name: v(name).permute(3, 2, 0, 1)  # noqa: E731
    sd = {f"b{top}.fromrgb.weight": conv(f"{top}x{top}/FromRGB/weight"),
          f"b{top}.fromrgb.bias": v(f"{top}x{top}/FromRGB/bias")}
    for r in res[1:]:
        sd[f"b{r}.conv0.weight"] = conv(f"{r}x{r}/Conv0/weight")
        sd[f"b{r}.conv0.bias"] = v(f"{r}x{r}/Conv0/bias")
        sd[f"b{r}.conv1.weight"] = conv(f"{r}x{r}/Conv1_down/weight")
        sd[f"b{r}.conv1.bias"] = v(f"{r}x{r}/Conv1_down/bias")
        sd[f"b{r}.skip.weight"] = conv(f"{r}x{r}/Skip/weight")
    sd["b4.conv.weight"] = conv("4x4/Conv/weight")
    sd["b4.conv.bias"] = v("4x4/Conv/bias")
    sd["b4.fc.weight"] = v("4x4/Dense0/weight").t()
    sd["b4.fc.bias"] = v("4x4/Dense0/bias")
    sd["b4.out.weight"] = v("Output/weight").t()
    sd["b4.out.bias"] = v("Output/bias")
    sd = {k: t.contiguous() for k, t in sd.items()}
    return sd, stylegan2_d_config_from_state(sd, path, mbstd_group_size=kw.get("mbstd_group_size"))


def _from_tf_stylegan(Gs: TFNetworkStub, path: Path) -> Checkpoint:
    v = _Source(Gs.all_variables(), path, "StyleGAN TF network")
    kw = _tf_kwargs(Gs)
    _check_tf_kwargs(kw, path)
    _check_fixed(kw, _SG1_FIXED_KWARGS, path, "StyleGAN")
    _lod_zero(v, ("lod", "synthesis/lod"), path)
    n_map = len(_resolutions(v.t, r"mapping/Dense(\d+)/weight"))
    res = _resolutions(v.t, r"synthesis/(\d+)x\d+/")
    n_layers = 2 * len(res)
    sd = {"mapping.w_avg": v("dlatent_avg"), "synthesis.const": v("synthesis/4x4/Const/const")[0]}
    for j in range(n_map):
        sd[f"mapping.dense{j}.weight"] = v(f"mapping/Dense{j}/weight").t()
        sd[f"mapping.dense{j}.bias"] = v(f"mapping/Dense{j}/bias")
    for i in range(n_layers):
        t, p = f"synthesis/{_sg1_layer_scope(i)}", f"synthesis.layer{i}"
        if i:
            # TF [kh, kw, in, out] also for the fused Conv0_up (it transposes at run time).
            sd[f"{p}.weight"] = v(f"{t}/weight").permute(3, 2, 0, 1)
        sd[f"{p}.bias"] = v(f"{t}/bias")
        sd[f"{p}.noise_strength"] = v(f"{t}/Noise/weight")
        sd[f"{p}.noise_const"] = v(f"synthesis/noise{i}")[0, 0]
        sd[f"{p}.style.weight"] = v(f"{t}/StyleMod/weight").t()
        sd[f"{p}.style.bias"] = v(f"{t}/StyleMod/bias")
    sd["synthesis.torgb.weight"] = v("synthesis/ToRGB_lod0/weight").permute(3, 2, 0, 1)
    sd["synthesis.torgb.bias"] = v("synthesis/ToRGB_lod0/bias")
    sd = {k: t.contiguous() for k, t in sd.items()}
    blur = kw.get("blur_filter", [1, 2, 1])
    cfg = stylegan_config_from_state(
        sd, path, mapping_lr_multiplier=kw.get("mapping_lrmul"), w_avg_beta=kw.get("dlatent_avg_beta"),
        fused_scale=kw.get("fused_scale"), truncation_cutoff=kw.get("truncation_cutoff"))
    cfg["blur_taps"] = list(blur) if blur is not None else None
    return Checkpoint("stylegan", cfg, sd, meta={"source_format": "tf-stylegan", "tf_kwargs": _plain_kwargs(kw)})


def _from_tf_pggan(Gs: TFNetworkStub, path: Path) -> Checkpoint:
    v = _Source(Gs.all_variables(), path, "PGGAN TF network")
    kw = dict(Gs.static_kwargs)
    _check_tf_kwargs(kw, path)
    _check_fixed(kw, _PGGAN_FIXED_KWARGS, path, "PGGAN")
    _lod_zero(v, ("lod",), path)
    res = _resolutions(v.t, r"(\d+)x\d+/")
    fused = any(k.endswith("/Conv0_up/weight") for k in v.t)
    sd = {"layer0.weight": v("4x4/Dense/weight").t(),           # TF [z, 16*C], row c*16 + h*4 + w
          "layer0.bias": v("4x4/Dense/bias"),
          "layer1.weight": v("4x4/Conv/weight").permute(3, 2, 0, 1),
          "layer1.bias": v("4x4/Conv/bias")}
    for k, r in enumerate(res[1:]):
        i = 2 * k + 2
        if fused:  # G_paper's fused Conv0_up stores [kh, kw, out, in]
            sd[f"layer{i}.weight"] = v(f"{r}x{r}/Conv0_up/weight").permute(2, 3, 0, 1)
            sd[f"layer{i}.bias"] = v(f"{r}x{r}/Conv0_up/bias")
        else:
            sd[f"layer{i}.weight"] = v(f"{r}x{r}/Conv0/weight").permute(3, 2, 0, 1)
            sd[f"layer{i}.bias"] = v(f"{r}x{r}/Conv0/bias")
        sd[f"layer{i + 1}.weight"] = v(f"{r}x{r}/Conv1/weight").permute(3, 2, 0, 1)
        sd[f"layer{i + 1}.bias"] = v(f"{r}x{r}/Conv1/bias")
    sd["torgb.weight"] = v("ToRGB_lod0/weight").permute(3, 2, 0, 1)
    sd["torgb.bias"] = v("ToRGB_lod0/bias")
    sd = {k: t.contiguous() for k, t in sd.items()}
    cfg = pggan_config_from_state(sd, path, fused_scale=fused,
                                  normalize_latents=kw.get("normalize_latents"),
                                  use_pixelnorm=kw.get("use_pixelnorm"),
                                  pixelnorm_epsilon=kw.get("pixelnorm_epsilon"))
    return Checkpoint("pggan", cfg, sd, meta={"source_format": "tf-pggan", "tf_kwargs": _plain_kwargs(kw)})
