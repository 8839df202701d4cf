"""PyTorch on the same GPU as gpu-check.sh's golcm rows: what golcm's users would run instead.

  python3 experiments/gpu-check-torch.py [--diffusers-src DIR] [--repeats 5] [--budget-s 120]

Prints one JSON line per row, with seconds (median of CUDA-synchronised timed runs after two warm-ups)
and the peak of torch.cuda.max_memory_allocated:
  - matmul: an 8192^3 product in float32, float32 with TF32 (XLA's default for float32 matmuls on CUDA,
    which golcm keeps) and bfloat16: the card's ceilings, to read golcm's rates against.
  - where diffusers imports (installed, or its source folder given with --diffusers-src; it is not part of
    golcm), SD 1.5's UNet2DConditionModel with random weights at 64x64 latents: a forward at batch 1 and
    8, and the work of one distillation step at batch 4 the way diffusers' train_lcm_distill_sd_wds.py
    does it (the student's forward and backward, two teacher forwards for guidance and one target
    forward without gradients, AdamW, the EMA update of the target), full and, where peft imports, LoRA
    (rank 64 on the script's target modules; the teacher is the base UNet with the adapters off, the
    student its own target). Each in float32 with TF32 and in fp16 autocast (the scripts'
    --mixed_precision=fp16).
A row that fails prints its error and the next one runs.
"""
import argparse
import contextlib
import json
import os
import sys
import time

import torch


def timed(fn, repeats):
    for _ in range(2):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def emit(**row):
    row["peak_mem_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    print(json.dumps(row), flush=True)


def matmul_rows(repeats):
    n = 8192
    for name, dtype, tf32 in [("float32", torch.float32, False), ("tf32", torch.float32, True),
                              ("bfloat16", torch.bfloat16, False)]:
        torch.backends.cuda.matmul.allow_tf32 = tf32
        a = torch.randn(n, n, device="cuda", dtype=dtype)
        b = torch.randn(n, n, device="cuda", dtype=dtype)
        s = timed(lambda: a @ b, repeats)
        emit(row="matmul", dtype=name, n=n, seconds=round(s, 5), tflops=round(2 * n**3 / s / 1e12, 1))
        del a, b
    torch.backends.cuda.matmul.allow_tf32 = True


SD15 = dict(sample_size=64, block_out_channels=(320, 640, 1280, 1280), layers_per_block=2,
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, cross_attention_dim=768,
            attention_head_dim=8)
# train_lcm_distill_lora_sd_wds.py's LoRA target modules.
LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2",
                "conv1", "conv2", "conv_shortcut", "downsamplers.0.conv", "upsamplers.0.conv", "time_emb_proj"]


def inputs(batch):
    return (torch.randn(batch, 4, 64, 64, device="cuda"), torch.full((batch,), 500, device="cuda"),
            torch.randn(batch, 77, 768, device="cuda"))


def unet_rows(UNet, repeats, deadline):
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    for precision in ["tf32", "fp16-autocast"]:
        ctx = (lambda: torch.autocast("cuda", dtype=torch.float16)) if precision != "tf32" else contextlib.nullcontext
        for what, batch in [("forward", 1), ("forward", 8), ("distill step (full)", 4), ("distill step (lora)", 4)]:
            if time.time() > deadline:
                print(json.dumps(dict(row="sd15", what=what, batch=batch, precision=precision, skipped="budget")))
                continue
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            try:
                step = make(UNet, what, batch, ctx)
                s = timed(step, repeats)
                emit(row="sd15", what=what, batch=batch, precision=precision, seconds=round(s, 4),
                     samples_per_s=round(batch / s, 2))
            except Exception as e:  # a row too big or a missing package: say so, go on
                print(json.dumps(dict(row="sd15", what=what, batch=batch, precision=precision,
                                      error=f"{type(e).__name__}: {e}"[:300])), flush=True)
            finally:
                step = None
                torch.cuda.empty_cache()


def make(UNet, what, batch, ctx):
    torch.manual_seed(0)
    with torch.device("cuda"):
        unet = UNet(**SD15)
    x, t, c = inputs(batch)
    if what == "forward":
        unet.requires_grad_(False)

        def forward():
            with torch.no_grad(), ctx():
                unet(x, t, c)
        return forward
    if what == "distill step (full)":
        teacher = unet.requires_grad_(False)
        with torch.device("cuda"):
            student = UNet(**SD15, time_cond_proj_dim=256)
            target = UNet(**SD15, time_cond_proj_dim=256).requires_grad_(False)
        params = list(student.parameters())
        w = torch.randn(batch, 256, device="cuda")
        opt = torch.optim.AdamW(params, lr=1e-6)

        def step():
            with ctx():
                pred = student(x, t, c, timestep_cond=w).sample
                with torch.no_grad():
                    cond = teacher(x, t, c).sample
                    uncond = teacher(x, t, torch.zeros_like(c)).sample
                    tgt = target(x, t, c, timestep_cond=w).sample
                loss = torch.nn.functional.mse_loss(pred.float(), (tgt + cond - uncond).float())
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            with torch.no_grad():
                for p_t, p_s in zip(target.parameters(), params):
                    p_t.lerp_(p_s, 1 - 0.95)
        return step
    from peft import LoraConfig  # noqa: E402 (LoRA rows only)

    unet.requires_grad_(False)
    unet.add_adapter(LoraConfig(r=64, lora_alpha=64, target_modules=LORA_TARGETS))
    params = [p for p in unet.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)

    def lora_step():
        with ctx():
            pred = unet(x, t, c).sample
            with torch.no_grad():
                unet.disable_adapters()
                cond = unet(x, t, c).sample
                uncond = unet(x, t, torch.zeros_like(c)).sample
                unet.enable_adapters()
                tgt = unet(x, t, c).sample
            loss = torch.nn.functional.mse_loss(pred.float(), (tgt + cond - uncond).float())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return lora_step


def main():
    a = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    a.add_argument("--diffusers-src", default=os.environ.get("DIFFUSERS_SRC", ""),
                   help="folder holding the diffusers package (a source checkout's src/), when not installed")
    a.add_argument("--repeats", type=int, default=5, help="timed runs per row after two warm-ups")
    a.add_argument("--budget-s", type=float, default=120, help="skip the UNet rows that would start after this")
    args = a.parse_args()
    deadline = time.time() + args.budget_s
    if not torch.cuda.is_available():
        sys.exit("gpu-check-torch: PyTorch sees no CUDA device")
    print(json.dumps(dict(row="env", torch=torch.__version__, cuda=torch.version.cuda,
                          device=torch.cuda.get_device_name(0))), flush=True)
    matmul_rows(args.repeats)
    if args.diffusers_src:
        sys.path.insert(0, args.diffusers_src)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from diffusers import UNet2DConditionModel
    except Exception as e:
        print(json.dumps(dict(row="sd15", skipped=f"diffusers does not import: {type(e).__name__}: {e}"[:300])))
        return
    unet_rows(UNet2DConditionModel, args.repeats, deadline)


if __name__ == "__main__":
    main()
