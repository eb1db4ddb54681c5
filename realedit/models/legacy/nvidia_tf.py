"""NVIDIA's TF1 network pickles ``(G, D, Gs)``: PGGAN (``G_paper``), StyleGAN (``G_style``),
StyleGAN2 (``G_main`` + ``G_synthesis_stylegan2``), read through realedit.models.unpickle without
executing the source stored in them."""
from __future__ import annotations

import math
from pathlib import Path


from ...errors import FormatError, WeightsError
from ..unpickle import TFNetworkStub
from ..checkpoint import Checkpoint
from .files import (_plain_kwargs, _Source, plane, plus_one, scalar, take, tf_conv, tf_up_conv,
                    transposed)
from .layouts import (_PGGAN_FIXED_KWARGS, _SG1_FIXED_KWARGS, _check_fixed, _lod_zero, _resolutions,
                      _sg1_layer_scope, pggan_config_from_state, stylegan2_config_from_state,
                      stylegan2_d_config_from_state, stylegan_config_from_state)


def _paper_up_conv(w):  # G_paper's fused Conv0_up stores [kh, kw, out, in]
    return w.permute(2, 3, 0, 1)


# realedit's name <- the TF variable's, and how. {o}: our layer, {t}: the TF scope, {n}: its
# noise input; TF keeps convs as [kh, kw, in, out] and denses as [in, out].
SG2_MAPPING = (("mapping.fc{i}.weight", "mapping/Dense{i}/weight", transposed),
               ("mapping.fc{i}.bias", "mapping/Dense{i}/bias", None))
_SG2_STYLE = (("{o}.bias", "{t}/bias", None),
              ("{o}.affine.weight", "{t}/mod_weight", transposed),
              ("{o}.affine.bias", "{t}/mod_bias", plus_one))      # TF adds the 1 at run time
_SG2_NOISE = (("{o}.noise_strength", "{t}/noise_strength", scalar),
              ("{o}.noise_const", "synthesis/noise{n}", plane))
SG2_CONV = (("{o}.weight", "{t}/weight", tf_conv),) + _SG2_STYLE + _SG2_NOISE
SG2_UP_CONV = (("{o}.weight", "{t}/weight", tf_up_conv),) + _SG2_STYLE + _SG2_NOISE
SG2_TO_RGB = (("{o}.weight", "{t}/weight", tf_conv),) + _SG2_STYLE
SG2_D_FROM_RGB = (("b{r}.fromrgb.weight", "{r}x{r}/FromRGB/weight", tf_conv),
                  ("b{r}.fromrgb.bias", "{r}x{r}/FromRGB/bias", None))
SG2_D_BLOCK = (("b{r}.conv0.weight", "{r}x{r}/Conv0/weight", tf_conv),
               ("b{r}.conv0.bias", "{r}x{r}/Conv0/bias", None),
               ("b{r}.conv1.weight", "{r}x{r}/Conv1_down/weight", tf_conv),
               ("b{r}.conv1.bias", "{r}x{r}/Conv1_down/bias", None),
               ("b{r}.skip.weight", "{r}x{r}/Skip/weight", tf_conv))
SG2_D_EPILOGUE = (("b4.conv.weight", "4x4/Conv/weight", tf_conv),
                  ("b4.conv.bias", "4x4/Conv/bias", None),
                  ("b4.fc.weight", "4x4/Dense0/weight", transposed),
                  ("b4.fc.bias", "4x4/Dense0/bias", None),
                  ("b4.out.weight", "Output/weight", transposed),
                  ("b4.out.bias", "Output/bias", None))
SG1_MAPPING = (("mapping.dense{j}.weight", "mapping/Dense{j}/weight", transposed),
               ("mapping.dense{j}.bias", "mapping/Dense{j}/bias", None))
SG1_WEIGHT = (("{o}.weight", "{t}/weight", tf_conv),)  # the fused Conv0_up too (TF transposes it at run time)
SG1_LAYER = (("{o}.bias", "{t}/bias", None),
             ("{o}.noise_strength", "{t}/Noise/weight", None),
             ("{o}.noise_const", "synthesis/noise{n}", plane),
             ("{o}.style.weight", "{t}/StyleMod/weight", transposed),
             ("{o}.style.bias", "{t}/StyleMod/bias", None))
SG1_TO_RGB = (("synthesis.torgb.weight", "synthesis/ToRGB_lod0/weight", tf_conv),
              ("synthesis.torgb.bias", "synthesis/ToRGB_lod0/bias", None))
PGGAN_HEAD = (("layer0.weight", "4x4/Dense/weight", transposed),  # TF [z, 16*C], row c*16 + h*4 + w
              ("layer0.bias", "4x4/Dense/bias", None),
              ("layer1.weight", "4x4/Conv/weight", tf_conv),
              ("layer1.bias", "4x4/Conv/bias", None))
_PGGAN_CONV1 = (("layer{j}.weight", "{r}x{r}/Conv1/weight", tf_conv),
                ("layer{j}.bias", "{r}x{r}/Conv1/bias", None))
PGGAN_BLOCK = (("layer{i}.weight", "{r}x{r}/Conv0/weight", tf_conv),
               ("layer{i}.bias", "{r}x{r}/Conv0/bias", None)) + _PGGAN_CONV1
PGGAN_FUSED_BLOCK = (("layer{i}.weight", "{r}x{r}/Conv0_up/weight", _paper_up_conv),
                     ("layer{i}.bias", "{r}x{r}/Conv0_up/bias", None)) + _PGGAN_CONV1
PGGAN_TO_RGB = (("torgb.weight", "ToRGB_lod0/weight", tf_conv),
                ("torgb.bias", "ToRGB_lod0/bias", None))


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
        sd.update(take(v, SG2_MAPPING, i=i))
    sd["synthesis.b4.const"] = v("synthesis/4x4/Const/const")[0]
    sd.update(take(v, SG2_CONV, o="synthesis.b4.conv1", t="synthesis/4x4/Conv", n=0))
    sd.update(take(v, SG2_TO_RGB, o="synthesis.b4.torgb", t="synthesis/4x4/ToRGB"))
    for r in res[1:]:
        l2 = int(math.log2(r))
        sd.update(take(v, SG2_UP_CONV, o=f"synthesis.b{r}.conv0", t=f"synthesis/{r}x{r}/Conv0_up",
                       n=2 * l2 - 5))
        sd.update(take(v, SG2_CONV, o=f"synthesis.b{r}.conv1", t=f"synthesis/{r}x{r}/Conv1",
                       n=2 * l2 - 4))
        sd.update(take(v, SG2_TO_RGB, o=f"synthesis.b{r}.torgb", t=f"synthesis/{r}x{r}/ToRGB"))
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
    sd = take(v, SG2_D_FROM_RGB, r=res[-1])
    for r in res[1:]:
        sd.update(take(v, SG2_D_BLOCK, r=r))
    sd.update(take(v, SG2_D_EPILOGUE))
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
        sd.update(take(v, SG1_MAPPING, j=j))
    for i in range(n_layers):
        names = dict(o=f"synthesis.layer{i}", t=f"synthesis/{_sg1_layer_scope(i)}", n=i)
        sd.update(take(v, (SG1_WEIGHT if i else ()) + SG1_LAYER, **names))
    sd.update(take(v, SG1_TO_RGB))
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
    sd = take(v, PGGAN_HEAD)
    for k, r in enumerate(res[1:]):
        sd.update(take(v, PGGAN_FUSED_BLOCK if fused else PGGAN_BLOCK, i=2 * k + 2, j=2 * k + 3,
                       r=r))
    sd.update(take(v, PGGAN_TO_RGB))
    sd = {k: t.contiguous() for k, t in sd.items()}
    cfg = pggan_config_from_state(sd, path, fused_scale=fused,
                                  normalize_latents=kw.get("normalize_latents"),
                                  use_pixelnorm=kw.get("use_pixelnorm"),
                                  pixelnorm_epsilon=kw.get("pixelnorm_epsilon"))
    return Checkpoint("pggan", cfg, sd, meta={"source_format": "tf-pggan", "tf_kwargs": _plain_kwargs(kw)})
