"""Tiny weight files in each official format, for the loader tests.

Each ``export_*`` function is the INVERSE of one converter in ``realedit.models.legacy``:
it takes a realedit generator and writes what the official tools would have written
(official variable names, layouts, pickle classes). They live here, not in the package,
because realedit never needs to write foreign formats.

Foreign pickle classes (``dnnlib.tflib.network.Network``, ``torch_utils.persistence``'s
reconstruct function, ``dnnlib.util.EasyDict``) are written under their real module paths by
a pickler that substitutes local stand-ins, so no fake module is ever put in sys.modules.
"""
from __future__ import annotations

import collections
import io
import math
import pickle
import types

import numpy as np
import torch

# ----------------------------------------------------------------------------- pickling helpers


class ForeignPickler(pickle._Pickler):
    """Pure-Python pickler that writes some local objects as globals of other modules."""

    # The base class dispatches plain functions straight to its own save_global.
    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[types.FunctionType] = lambda self, obj: self.save_global(obj)

    def __init__(self, file, names: dict, protocol: int = 4):
        super().__init__(file, protocol=protocol)
        self._foreign = {id(obj): where for obj, where in names.items()}

    def save_global(self, obj, name=None):
        where = self._foreign.get(id(obj))
        if where is None:
            return super().save_global(obj, name)
        module, qualname = where
        if self.proto >= 4:
            self.save(module)
            self.save(qualname)
            self.write(pickle.STACK_GLOBAL)
        else:
            self.write(pickle.GLOBAL + f"{module}\n{qualname}\n".encode("utf-8"))
        self.memoize(obj)


def dumps_foreign(obj, names: dict, protocol: int = 4) -> bytes:
    f = io.BytesIO()
    ForeignPickler(f, names, protocol).dump(obj)
    return f.getvalue()


class FakeTFNetwork:
    """Pickles exactly like dnnlib.tflib.network.Network: NEWOBJ + BUILD(state dict)."""

    def __init__(self, name, build_func_name, static_kwargs, variables, components=None, version=4):
        self._state = {"version": version, "name": name, "static_kwargs": dict(static_kwargs),
                       "components": dict(components or {}),
                       "build_module_src": "raise RuntimeError('this source must never run')\n",
                       "build_func_name": build_func_name,
                       "variables": [(k, np.asarray(v, dtype=np.float32)) for k, v in variables.items()]}
        if version < 3:  # PGGAN's tfutil.Network has no components
            del self._state["components"]

    def __getstate__(self):
        return dict(self._state)


class FakeEasyDict(dict):
    pass


def fake_reconstruct_persistent_obj(meta):  # pragma: no cover - never called, only pickled
    raise RuntimeError("stand-in only")


class FakePersistent:
    """Pickles like a torch_utils.persistence object: REDUCE(_reconstruct_persistent_obj, (meta,))."""

    def __init__(self, class_name, state):
        self.class_name, self.state = class_name, state

    def __reduce__(self):
        meta = dict(type="class", version=6, module_src="raise RuntimeError('never run')\n",
                    class_name=self.class_name, state=self.state)
        return (fake_reconstruct_persistent_obj, (meta,))


def _np_names():
    # Real files from 2018-2021 name numpy's array rebuild function under numpy.core.
    from numpy._core import multiarray
    return {multiarray._reconstruct: ("numpy.core.multiarray", "_reconstruct")}


def tf_pickle_bytes(G, D, Gs, module="dnnlib.tflib.network", protocol=4) -> bytes:
    names = {FakeTFNetwork: (module, "Network"), **_np_names()}
    return dumps_foreign((G, D, Gs), names, protocol)


def ada_pickle_bytes(data: dict, protocol=4) -> bytes:
    names = {fake_reconstruct_persistent_obj: ("torch_utils.persistence", "_reconstruct_persistent_obj"),
             FakeEasyDict: ("dnnlib.util", "EasyDict")}
    return dumps_foreign(data, names, protocol)


def np32(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32)


# ----------------------------------------------------------------------------- tiny models


def tiny_stylegan2(seed=0, resolution=16, **kw):
    from realedit.models.stylegan2 import StyleGAN2Generator
    torch.manual_seed(seed)
    cfg = dict(z_dim=16, w_dim=16, channel_base=16 * 16, channel_max=16, mapping_layers=2)
    cfg.update(kw)
    G = StyleGAN2Generator(resolution=resolution, **cfg).eval()
    randomize_(G, seed)
    return G


def tiny_stylegan2_D(seed=0, resolution=16):
    from realedit.models.stylegan2 import StyleGAN2Discriminator
    torch.manual_seed(seed + 100)
    D = StyleGAN2Discriminator(resolution=resolution, channel_base=16 * 16, channel_max=16).eval()
    randomize_(D, seed + 100)
    return D


def randomize_(module, seed=0):
    """Give every parameter and buffer (except fixed filters) random non-trivial values.

    Zero-initialised biases / noise strengths would hide wrongly mapped variables.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(module.named_parameters()) + list(module.named_buffers()):
            if "resample_filter" in name or "kernel" in name:
                continue
            if name.endswith("w_avg"):
                t.copy_(torch.randn(t.shape, generator=g) * 0.3)
            elif name.endswith("noise_strength") or name.endswith("noise.weight"):
                t.copy_(torch.randn(t.shape, generator=g) * 0.2)
            elif name.endswith("bias"):
                t.copy_(torch.randn(t.shape, generator=g) * 0.1 + (1.0 if "affine" in name else 0.0))
            else:
                t.copy_(torch.randn(t.shape, generator=g))
        # Layers with a learning-rate multiplier store values divided by it (as trained ones do).
        for m in module.modules():
            lr = getattr(m, "bias_gain", None)
            if isinstance(lr, float) and lr != 1.0:
                m.weight.div_(lr)
                if m.bias is not None:
                    m.bias.div_(lr)
    return module


# ----------------------------------------------------------------------------- StyleGAN2: TF


def stylegan2_to_tf_vars(G) -> tuple[dict, dict]:
    """(mapping variables, synthesis variables) named as in NVlabs/stylegan2 G_main components."""
    sd = G.state_dict()
    mapping = {}
    n_map = G.config["mapping_layers"]
    for i in range(n_map):
        mapping[f"Dense{i}/weight"] = np32(sd[f"mapping.fc{i}.weight"].t())
        mapping[f"Dense{i}/bias"] = np32(sd[f"mapping.fc{i}.bias"])
    synth = {"4x4/Const/const": np32(sd["synthesis.b4.const"][None])}

    def layer(ours, tf, noise_idx=None, flip=False):
        w = sd[f"{ours}.weight"].permute(2, 3, 1, 0)  # [out,in,kh,kw] -> [kh,kw,in,out]
        if flip:
            w = w.flip(0, 1)
        synth[f"{tf}/weight"] = np32(w)
        synth[f"{tf}/bias"] = np32(sd[f"{ours}.bias"])
        synth[f"{tf}/mod_weight"] = np32(sd[f"{ours}.affine.weight"].t())
        synth[f"{tf}/mod_bias"] = np32(sd[f"{ours}.affine.bias"] - 1)
        if noise_idx is not None:
            synth[f"{tf}/noise_strength"] = np32(sd[f"{ours}.noise_strength"])
            synth[f"noise{noise_idx}"] = np32(sd[f"{ours}.noise_const"][None, None])

    layer("synthesis.b4.conv1", "4x4/Conv", 0)
    layer("synthesis.b4.torgb", "4x4/ToRGB")
    for r in G.synthesis.block_resolutions[1:]:
        l2 = int(math.log2(r))
        layer(f"synthesis.b{r}.conv0", f"{r}x{r}/Conv0_up", 2 * l2 - 5, flip=True)
        layer(f"synthesis.b{r}.conv1", f"{r}x{r}/Conv1", 2 * l2 - 4)
        layer(f"synthesis.b{r}.torgb", f"{r}x{r}/ToRGB")
    return mapping, synth


def stylegan2_D_to_tf_vars(D) -> dict:
    sd = D.state_dict()
    conv = lambda k: np32(sd[k].permute(2, 3, 1, 0))  # noqa: E731
    top = D.resolution
    out = {f"{top}x{top}/FromRGB/weight": conv(f"b{top}.fromrgb.weight"),
           f"{top}x{top}/FromRGB/bias": np32(sd[f"b{top}.fromrgb.bias"])}
    for r in D.block_resolutions:
        out[f"{r}x{r}/Conv0/weight"] = conv(f"b{r}.conv0.weight")
        out[f"{r}x{r}/Conv0/bias"] = np32(sd[f"b{r}.conv0.bias"])
        out[f"{r}x{r}/Conv1_down/weight"] = conv(f"b{r}.conv1.weight")
        out[f"{r}x{r}/Conv1_down/bias"] = np32(sd[f"b{r}.conv1.bias"])
        out[f"{r}x{r}/Skip/weight"] = conv(f"b{r}.skip.weight")
    out["4x4/Conv/weight"] = conv("b4.conv.weight")
    out["4x4/Conv/bias"] = np32(sd["b4.conv.bias"])
    out["4x4/Dense0/weight"] = np32(sd["b4.fc.weight"].t())
    out["4x4/Dense0/bias"] = np32(sd["b4.fc.bias"])
    out["Output/weight"] = np32(sd["b4.out.weight"].t())
    out["Output/bias"] = np32(sd["b4.out.bias"])
    return out


def export_tf_stylegan2(G, D=None, mutate=None) -> bytes:
    """A (G, D, Gs) pickle like stylegan2-*-config-f.pkl. ``mutate(mapping, synth, top)`` may
    edit the variable dicts (by official name) before pickling."""
    mapping, synth = stylegan2_to_tf_vars(G)
    top = {"dlatent_avg": np32(G.w_avg), "lod": np.float32(0)}
    if mutate is not None:
        mutate(mapping, synth, top)
    R = G.resolution
    kw_common = dict(num_channels=3, resolution=R, label_size=0)
    mnet = FakeTFNetwork("G_mapping", "G_mapping",
                         dict(latent_size=G.z_dim, dlatent_size=G.w_dim, mapping_layers=G.config["mapping_layers"],
                              dlatent_broadcast=G.num_ws, label_size=0), mapping)
    snet = FakeTFNetwork("G_synthesis", "G_synthesis_stylegan2",
                         dict(kw_common, dlatent_size=G.w_dim, fmap_base=G.config["channel_base"] // 2,
                              fmap_max=G.config["channel_max"]), synth)
    Gs = FakeTFNetwork("Gs", "G_main", dict(kw_common, latent_size=G.z_dim, dlatent_size=G.w_dim,
                                            fmap_base=G.config["channel_base"] // 2,
                                            fmap_max=G.config["channel_max"], mapping_layers=G.config["mapping_layers"]),
                       top, components={"mapping": mnet, "synthesis": snet})
    if D is not None:
        Dnet = FakeTFNetwork("D", "D_stylegan2", dict(kw_common, fmap_base=D.config["channel_base"] // 2,
                                                      fmap_max=D.config["channel_max"], mbstd_group_size=4),
                             stylegan2_D_to_tf_vars(D))
    else:
        Dnet = FakeTFNetwork("D", "D_stylegan2", dict(kw_common), {})
    return tf_pickle_bytes(Gs, Dnet, Gs)


# ----------------------------------------------------------------------------- StyleGAN2: ada


_ADA_CLASS = {"StyleGAN2Generator": "Generator", "MappingNetwork": "MappingNetwork",
              "FullyConnectedLayer": "FullyConnectedLayer", "SynthesisNetwork": "SynthesisNetwork",
              "SynthesisBlock": "SynthesisBlock", "SynthesisLayer": "SynthesisLayer",
              "ToRGBLayer": "ToRGBLayer", "StyleGAN2Discriminator": "Discriminator",
              "DiscriminatorBlock": "DiscriminatorBlock", "Conv2dLayer": "Conv2dLayer",
              "DiscriminatorEpilogue": "DiscriminatorEpilogue", "MinibatchStdLayer": "MinibatchStdLayer"}


def _persistent(module, init_kwargs=None, overrides=None) -> FakePersistent:
    """A module's __dict__ as torch_utils.persistence pickles it (tensors are real torch tensors)."""
    overrides = overrides or {}
    params = collections.OrderedDict((k, v) for k, v in module._parameters.items())
    buffers = collections.OrderedDict((k, v) for k, v in module._buffers.items())
    children = collections.OrderedDict((k, _persistent(m, overrides=overrides)) for k, m in module._modules.items())
    state = {"training": False, "_parameters": params, "_buffers": buffers,
             "_non_persistent_buffers_set": set(), "_backward_hooks": collections.OrderedDict(),
             "_forward_hooks": collections.OrderedDict(), "_forward_pre_hooks": collections.OrderedDict(),
             "_state_dict_hooks": collections.OrderedDict(),
             "_load_state_dict_pre_hooks": collections.OrderedDict(),
             "_modules": children, "_init_args": (), "_init_kwargs": init_kwargs or FakeEasyDict()}
    return FakePersistent(_ADA_CLASS.get(type(module).__name__, type(module).__name__), state)


def export_ada(G, D=None, conv_clamp=None, extra_kwargs=None) -> bytes:
    """A dict pickle like stylegan2-ada-pytorch's network-snapshot / ffhq.pkl."""
    c = G.config
    kw = FakeEasyDict(z_dim=G.z_dim, c_dim=0, w_dim=G.w_dim, img_resolution=G.resolution, img_channels=3,
                      mapping_kwargs=FakeEasyDict(num_layers=c["mapping_layers"]),
                      synthesis_kwargs=FakeEasyDict(channel_base=c["channel_base"], channel_max=c["channel_max"],
                                                    num_fp16_res=4, conv_clamp=conv_clamp))
    kw.update(extra_kwargs or {})
    data = {"G": _persistent(G, kw), "G_ema": _persistent(G, kw),
            "augment_pipe": FakePersistent("AugmentPipe", {"_buffers": {"p": torch.zeros([])},
                                                           "_init_kwargs": FakeEasyDict(xflip=1)}),
            "training_set_kwargs": FakeEasyDict(path="~/datasets/ffhq.zip", resolution=G.resolution)}
    if D is not None:
        dkw = FakeEasyDict(c_dim=0, img_resolution=D.resolution, img_channels=3, architecture="resnet",
                           channel_base=D.config["channel_base"], channel_max=D.config["channel_max"],
                           epilogue_kwargs=FakeEasyDict(mbstd_group_size=4))
        data["D"] = _persistent(D, dkw)
    return ada_pickle_bytes(data)


# ----------------------------------------------------------------------------- StyleGAN2: rosinality


def export_rosinality(G, with_latent_avg=True) -> dict:
    """{'g_ema': state_dict, 'latent_avg': w} named as rosinality/stylegan2-pytorch's Generator."""
    sd = G.state_dict()
    out = {}
    for i in range(G.config["mapping_layers"]):
        out[f"style.{i + 1}.weight"] = sd[f"mapping.fc{i}.weight"].clone()
        out[f"style.{i + 1}.bias"] = sd[f"mapping.fc{i}.bias"].clone()
    out["input.input"] = sd["synthesis.b4.const"][None].clone()

    def styled(ours, theirs, noise_idx):
        out[f"{theirs}.conv.weight"] = sd[f"{ours}.weight"][None].clone()
        out[f"{theirs}.conv.modulation.weight"] = sd[f"{ours}.affine.weight"].clone()
        out[f"{theirs}.conv.modulation.bias"] = sd[f"{ours}.affine.bias"].clone()
        out[f"{theirs}.noise.weight"] = sd[f"{ours}.noise_strength"].reshape(1).clone()
        out[f"{theirs}.activate.bias"] = sd[f"{ours}.bias"].clone()
        out[f"noises.noise_{noise_idx}"] = sd[f"{ours}.noise_const"][None, None].clone()

    def torgb(ours, theirs, upsample):
        out[f"{theirs}.conv.weight"] = sd[f"{ours}.weight"][None].clone()
        out[f"{theirs}.conv.modulation.weight"] = sd[f"{ours}.affine.weight"].clone()
        out[f"{theirs}.conv.modulation.bias"] = sd[f"{ours}.affine.bias"].clone()
        out[f"{theirs}.bias"] = sd[f"{ours}.bias"].reshape(1, -1, 1, 1).clone()
        if upsample:
            out[f"{theirs}.upsample.kernel"] = torch.outer(*[torch.tensor([1., 3, 3, 1])] * 2) / 16 * 4

    styled("synthesis.b4.conv1", "conv1", 0)
    torgb("synthesis.b4.torgb", "to_rgb1", False)
    for k, r in enumerate(G.synthesis.block_resolutions[1:]):
        styled(f"synthesis.b{r}.conv0", f"convs.{2 * k}", 2 * k + 1)
        out[f"convs.{2 * k}.conv.blur.kernel"] = torch.outer(*[torch.tensor([1., 3, 3, 1])] * 2) / 16 * 4
        styled(f"synthesis.b{r}.conv1", f"convs.{2 * k + 1}", 2 * k + 2)
        torgb(f"synthesis.b{r}.torgb", f"to_rgbs.{k}", True)
    ckpt = {"g_ema": out}
    if with_latent_avg:
        ckpt["latent_avg"] = G.w_avg.detach().clone()
    return ckpt


# ----------------------------------------------------------------------------- StyleGAN (v1)


def tiny_stylegan(seed=0, resolution=16, **kw):
    from realedit.models.stylegan import StyleGANGenerator
    torch.manual_seed(seed)
    cfg = dict(z_dim=16, w_dim=16, mapping_layers=2, fmap_base=64, fmap_max=16)
    cfg.update(kw)
    return randomize_(StyleGANGenerator(resolution=resolution, **cfg).eval(), seed)


def _sg1_scope(i):
    if i < 2:
        return ("4x4/Const", "4x4/Conv")[i]
    r = 2 ** (i // 2 + 2)
    return f"{r}x{r}/{'Conv0_up' if i % 2 == 0 else 'Conv1'}"


def stylegan_to_tf_vars(G) -> tuple[dict, dict]:
    """(mapping, synthesis) variables named as NVlabs/stylegan G_mapping / G_synthesis."""
    sd = G.state_dict()
    mapping = {}
    for j in range(G.config["mapping_layers"]):
        mapping[f"Dense{j}/weight"] = np32(sd[f"mapping.dense{j}.weight"].t())
        mapping[f"Dense{j}/bias"] = np32(sd[f"mapping.dense{j}.bias"])
    synth = {"4x4/Const/const": np32(sd["synthesis.const"][None]), "lod": np.float32(0)}
    for i in range(G.num_ws):
        t, p = _sg1_scope(i), f"synthesis.layer{i}"
        if i:
            synth[f"{t}/weight"] = np32(sd[f"{p}.weight"].permute(2, 3, 1, 0))  # -> [kh, kw, in, out]
        synth[f"{t}/bias"] = np32(sd[f"{p}.bias"])
        synth[f"{t}/Noise/weight"] = np32(sd[f"{p}.noise_strength"])
        synth[f"noise{i}"] = np32(sd[f"{p}.noise_const"][None, None])
        synth[f"{t}/StyleMod/weight"] = np32(sd[f"{p}.style.weight"].t())
        synth[f"{t}/StyleMod/bias"] = np32(sd[f"{p}.style.bias"])
    synth["ToRGB_lod0/weight"] = np32(sd["synthesis.torgb.weight"].permute(2, 3, 1, 0))
    synth["ToRGB_lod0/bias"] = np32(sd["synthesis.torgb.bias"])
    # The lower-resolution ToRGB layers of progressive growing are in the file but unused.
    g = np.random.RandomState(0)
    for lod in range(1, int(math.log2(G.resolution)) - 1):
        c = sd[f"synthesis.layer{G.num_ws - 1 - 2 * lod}.bias"].shape[0]
        synth[f"ToRGB_lod{lod}/weight"] = g.randn(1, 1, c, 3).astype(np.float32)
        synth[f"ToRGB_lod{lod}/bias"] = g.randn(3).astype(np.float32)
    return mapping, synth


def export_tf_stylegan(G, mutate=None) -> bytes:
    """A (G, D, Gs) pickle like karras2019stylegan-ffhq-1024x1024.pkl."""
    mapping, synth = stylegan_to_tf_vars(G)
    top = {"dlatent_avg": np32(G.w_avg), "lod": np.float32(0)}
    if mutate is not None:
        mutate(mapping, synth, top)
    c = G.config
    kw = dict(num_channels=3, resolution=G.resolution, label_size=0, latent_size=G.z_dim,
              dlatent_size=G.w_dim, mapping_layers=c["mapping_layers"], fmap_base=c["fmap_base"],
              fmap_max=c["fmap_max"], fused_scale=c["fused_scale"], structure="linear")
    if c["blur_taps"] != [1, 2, 1]:
        kw["blur_filter"] = c["blur_taps"]
    mnet = FakeTFNetwork("G_mapping", "G_mapping", dict(latent_size=G.z_dim, dlatent_size=G.w_dim,
                                                         mapping_layers=c["mapping_layers"]), mapping)
    snet = FakeTFNetwork("G_synthesis", "G_synthesis", dict(kw), synth)
    Gs = FakeTFNetwork("Gs", "G_style", kw, top, components={"mapping": mnet, "synthesis": snet})
    D = FakeTFNetwork("D", "D_basic", dict(num_channels=3, resolution=G.resolution, label_size=0), {})
    return tf_pickle_bytes(Gs, D, Gs)


def export_genforce_stylegan(G) -> dict:
    """State dict named like interfacegan's StyleGANGeneratorModel (stylegan_ffhq.pth)."""
    sd = G.state_dict()
    out = {"truncation.w_avg": sd["mapping.w_avg"].clone(), "synthesis.lod": torch.zeros(())}
    for j in range(G.config["mapping_layers"]):
        out[f"mapping.dense{j}.linear.weight"] = sd[f"mapping.dense{j}.weight"].clone()
        out[f"mapping.dense{j}.wscale.bias"] = sd[f"mapping.dense{j}.bias"].clone()
    out["synthesis.layer0.first_layer"] = sd["synthesis.const"][None].clone()
    for i in range(G.num_ws):
        p = f"synthesis.layer{i}"
        if i:
            layer = getattr(G.synthesis, f"layer{i}")
            if layer.fused:
                out[f"{p}.weight"] = sd[f"{p}.weight"].permute(2, 3, 1, 0).clone()  # TF layout
            else:
                out[f"{p}.conv.weight"] = sd[f"{p}.weight"].clone()
        out[f"{p}.epilogue.bias"] = sd[f"{p}.bias"].clone()
        out[f"{p}.epilogue.apply_noise.weight"] = sd[f"{p}.noise_strength"].clone()
        out[f"{p}.epilogue.apply_noise.noise"] = sd[f"{p}.noise_const"][None, None].clone()
        out[f"{p}.epilogue.style_mod.dense.linear.weight"] = sd[f"{p}.style.weight"].clone()
        out[f"{p}.epilogue.style_mod.dense.wscale.bias"] = sd[f"{p}.style.bias"].clone()
    n_out = G.num_ws // 2
    g = torch.Generator().manual_seed(0)
    for k in range(n_out):
        c = sd[f"synthesis.layer{2 * k + 1}.bias"].shape[0]
        if k == n_out - 1:
            out[f"synthesis.output{k}.conv.weight"] = sd["synthesis.torgb.weight"].clone()
            out[f"synthesis.output{k}.bias"] = sd["synthesis.torgb.bias"].clone()
        else:  # ToRGB of lower resolutions: present, unused at lod 0
            out[f"synthesis.output{k}.conv.weight"] = torch.randn(3, c, 1, 1, generator=g)
            out[f"synthesis.output{k}.bias"] = torch.randn(3, generator=g)
    return out


# ----------------------------------------------------------------------------- PGGAN


def tiny_pggan(seed=0, resolution=16, **kw):
    from realedit.models.pggan import PGGANGenerator
    torch.manual_seed(seed)
    cfg = dict(z_dim=12, fmap_base=64, fmap_max=16)
    cfg.update(kw)
    return randomize_(PGGANGenerator(resolution=resolution, **cfg).eval(), seed)


def pggan_to_tf_vars(G) -> dict:
    """Variables of karras2018iclr's Gs (G_paper), official names and layouts."""
    sd = G.state_dict()
    conv = lambda k: np32(sd[k].permute(2, 3, 1, 0))  # noqa: E731  [out,in,kh,kw] -> [kh,kw,in,out]
    out = {"4x4/Dense/weight": np32(sd["layer0.weight"].t()), "4x4/Dense/bias": np32(sd["layer0.bias"]),
           "4x4/Conv/weight": conv("layer1.weight"), "4x4/Conv/bias": np32(sd["layer1.bias"]),
           "lod": np.float32(0)}
    fused = G.config["fused_scale"]
    for i in range(2, G.num_layers, 2):
        r = 2 ** (i // 2 + 2)
        if fused:  # G_paper's fused up-conv variable is [kh, kw, out, in]
            out[f"{r}x{r}/Conv0_up/weight"] = np32(sd[f"layer{i}.weight"].permute(2, 3, 0, 1))
            out[f"{r}x{r}/Conv0_up/bias"] = np32(sd[f"layer{i}.bias"])
        else:
            out[f"{r}x{r}/Conv0/weight"] = conv(f"layer{i}.weight")
            out[f"{r}x{r}/Conv0/bias"] = np32(sd[f"layer{i}.bias"])
        out[f"{r}x{r}/Conv1/weight"] = conv(f"layer{i + 1}.weight")
        out[f"{r}x{r}/Conv1/bias"] = np32(sd[f"layer{i + 1}.bias"])
    out["ToRGB_lod0/weight"] = conv("torgb.weight")
    out["ToRGB_lod0/bias"] = np32(sd["torgb.bias"])
    g = np.random.RandomState(1)
    for lod in range(1, int(math.log2(G.resolution)) - 1):
        c = sd[f"layer{G.num_layers - 1 - 2 * lod}.bias"].shape[0]
        out[f"ToRGB_lod{lod}/weight"] = g.randn(1, 1, c, 3).astype(np.float32)
        out[f"ToRGB_lod{lod}/bias"] = g.randn(3).astype(np.float32)
    return out


def export_tf_pggan(G, mutate=None, protocol=4) -> bytes:
    """A (G, D, Gs) pickle of tfutil.Network objects like karras2018iclr-celebahq-1024x1024.pkl."""
    v = pggan_to_tf_vars(G)
    if mutate is not None:
        mutate(v)
    kw = dict(num_channels=3, resolution=G.resolution, label_size=0, latent_size=G.z_dim,
              fmap_base=G.config["fmap_base"], fmap_max=G.config["fmap_max"], fused_scale=G.config["fused_scale"])
    Gs = FakeTFNetwork("Gs", "G_paper", kw, v, version=2)
    D = FakeTFNetwork("D", "D_paper", dict(num_channels=3, resolution=G.resolution, label_size=0), {}, version=2)
    return tf_pickle_bytes(Gs, D, Gs, module="tfutil", protocol=protocol)


def export_genforce_pggan(G) -> dict:
    """State dict named like interfacegan's PGGANGeneratorModel (pggan_celebahq.pth)."""
    sd = G.state_dict()
    w0 = sd["layer0.weight"]                                  # [16*C, z], row c*16 + h*4 + w
    C, z = w0.shape[0] // 16, w0.shape[1]
    out = {"lod": torch.zeros(()),
           "layer0.conv.weight": w0.reshape(C, 4, 4, z).permute(0, 3, 1, 2).flip(2, 3).clone(),
           "layer0.wscale.bias": sd["layer0.bias"].clone()}
    for i in range(1, G.num_layers):
        layer = getattr(G, f"layer{i}")
        if getattr(layer, "fused", False):
            out[f"layer{i}.weight"] = sd[f"layer{i}.weight"].permute(2, 3, 1, 0).clone()  # [kh, kw, in, out]
        else:
            out[f"layer{i}.conv.weight"] = sd[f"layer{i}.weight"].clone()
        out[f"layer{i}.wscale.bias"] = sd[f"layer{i}.bias"].clone()
    n_out = G.num_layers // 2
    g = torch.Generator().manual_seed(0)
    for k in range(n_out):
        c = sd[f"layer{2 * k + 1}.bias"].shape[0]
        if k == n_out - 1:
            out[f"output{k}.conv.weight"] = sd["torgb.weight"].clone()
            out[f"output{k}.wscale.bias"] = sd["torgb.bias"].clone()
        else:
            out[f"output{k}.conv.weight"] = torch.randn(3, c, 1, 1, generator=g)
            out[f"output{k}.wscale.bias"] = torch.randn(3, generator=g)
    return out


# ----------------------------------------------------------------------------- pSp / e4e checkpoints

# The layout of the released pSp / e4e encoders (pixel2style2pixel GradualStyleEncoder and
# encoder4editing Encoder4Editing, both over an IR-SE-50 backbone), written out from their
# published structure: units per stage, per-unit tensors, one head per W+ layer.
PSP_FULL_WIDTHS = (64, 128, 256, 512)
PSP_STAGE_UNITS = (3, 4, 14, 3)


def _bn(prefix: str, c: int) -> dict:
    return {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
            f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()}


def psp_encoder_shapes(n_styles: int, widths=PSP_FULL_WIDTHS, stem: int = 64,
                       se: bool = True) -> dict[str, tuple]:
    """Name -> shape of every tensor of a pSp / e4e ``encoder.*`` state dict (prefix stripped).

    ``widths`` (64, 128, 256, 512) and stem 64 are the released sizes; the tests also use
    narrower ones in the same layout. The last width is the style (w) dimension.
    """
    shapes = {"input_layer.0.weight": (stem, 3, 3, 3), **_bn("input_layer.1", stem),
              "input_layer.2.weight": (stem,)}
    u, cin = 0, stem
    for n, w in zip(PSP_STAGE_UNITS, widths):
        for i in range(n):
            p = f"body.{u}"
            if cin != w:  # a 1x1 projection shortcut; otherwise plain strided subsampling
                shapes[f"{p}.shortcut_layer.0.weight"] = (w, cin, 1, 1)
                shapes.update(_bn(f"{p}.shortcut_layer.1", w))
            shapes.update(_bn(f"{p}.res_layer.0", cin))
            shapes[f"{p}.res_layer.1.weight"] = (w, cin, 3, 3)
            shapes[f"{p}.res_layer.2.weight"] = (w,)  # PReLU
            shapes[f"{p}.res_layer.3.weight"] = (w, w, 3, 3)
            shapes.update(_bn(f"{p}.res_layer.4", w))
            if se:
                shapes[f"{p}.res_layer.5.fc1.weight"] = (w // 16, w, 1, 1)
                shapes[f"{p}.res_layer.5.fc2.weight"] = (w, w // 16, 1, 1)
            cin, u = w, u + 1
    d = widths[-1]
    for i in range(n_styles):
        convs = 4 if i < 3 else 5 if i < 7 else 6  # heads on the 16, 32 and 64 px maps
        for j in range(convs):
            shapes[f"styles.{i}.convs.{2 * j}.weight"] = (d, d, 3, 3)
            shapes[f"styles.{i}.convs.{2 * j}.bias"] = (d,)
        shapes[f"styles.{i}.linear.weight"] = (d, d)
        shapes[f"styles.{i}.linear.bias"] = (d,)
    shapes.update({"latlayer1.weight": (d, widths[2], 1, 1), "latlayer1.bias": (d,),
                   "latlayer2.weight": (d, widths[1], 1, 1), "latlayer2.bias": (d,)})
    return shapes


def random_psp_encoder_state(shapes: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded random values that keep activations of order one through the 24 units (conv
    weights scaled by 1/sqrt(fan-in), BN statistics around identity, PReLU slopes near 0.25)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, shape in shapes.items():
        r = torch.randn(shape, generator=g) if shape else torch.zeros(())
        if name.endswith("num_batches_tracked"):
            t = torch.tensor(1000, dtype=torch.long)
        elif name.endswith("running_var"):
            t = torch.rand(shape, generator=g) + 0.5
        elif name.endswith("running_mean") or name.endswith(".bias"):
            t = 0.1 * r
        elif len(shape) == 1:  # BN scale or PReLU slope
            t = (0.25 if name.endswith(".2.weight") else 1.0) + 0.05 * r
        elif name.endswith("linear.weight"):
            t = r  # EqualLinear scales by 1/sqrt(in) itself
        else:
            fan_in = int(np.prod(shape[1:]))
            gain = 0.5 if ".res_layer.3." in name else 1.0  # residual branches add up
            t = r * gain / math.sqrt(fan_in)
        out[name] = t.contiguous()
    return out


def export_psp(encoder_state: dict, G, encoder_type="Encoder4Editing", latent_avg=None,
               opts_as_namespace=False, extra=None) -> dict:
    """The dict pSp / e4e training saves: {'state_dict': {'encoder.*', 'decoder.*'},
    'latent_avg', 'opts': vars(options)}, the decoder in rosinality's layout."""
    import argparse

    n_styles = G.num_ws
    dec = export_rosinality(G, with_latent_avg=False)["g_ema"]
    sd = collections.OrderedDict((f"encoder.{k}", v) for k, v in encoder_state.items())
    sd.update((f"decoder.{k}", v) for k, v in dec.items())
    opts = {"exp_dir": "/experiments/run", "dataset_type": "ffhq_encode",
            "encoder_type": encoder_type, "batch_size": 8, "learning_rate": 0.0001,
            "start_from_latent_avg": latent_avg is not None, "lpips_lambda": 0.8,
            "stylegan_size": G.resolution, "output_size": G.resolution, "n_styles": n_styles,
            "checkpoint_path": None, "progressive_steps": [0, 20000] if encoder_type ==
            "Encoder4Editing" else None, "device": "cuda:0", "input_nc": 3, "label_nc": 0}
    out = {"state_dict": sd, "opts": argparse.Namespace(**opts) if opts_as_namespace else opts}
    if latent_avg is not None:
        out["latent_avg"] = latent_avg
    out.update(extra or {})
    return out
