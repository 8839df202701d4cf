// Package lora adds low-rank adapters (LoRA) to golcm's UNet the way PEFT
// does for diffusers' LCM-LoRA distillation scripts, and reads and writes the
// LoRA files diffusers, PEFT and kohya-style tools exchange.
//
// A targeted Linear layer computes y = Wx + b + (alpha/r)·B(A(dropout(x)));
// a targeted k×k Conv2d uses a k×k convolution to r channels (with the
// layer's stride and padding) for A and a 1×1 convolution for B. A starts
// Kaiming-uniform (PyTorch's default Linear/Conv2d init), B at zero, so the
// adapted UNet starts exactly equal to the base one.
//
// The adapter weights live in their own nn.Weights group, named like PEFT's
// state dict ("<module>.lora_A.weight", "<module>.lora_B.weight"). A graph
// binds that group with Adapters.Lookup and hands it to the base UNet's
// parameters through nn.Params.WithAdapters, so the teacher (plain base
// parameters) and the student (base + adapters) share one copy of the UNet:
//
//	student := base.WithAdapters(adapters.Lookup(loraParams))
//	out := unet.Forward(student.Root(""), cfg, in)
//
// Which layers are adapted comes from the base model's weight schema
// (unet.Config.ParamShapes): a module is targeted when its name equals a
// target or ends with "."+target (PEFT's rule); a rank-2 ".weight" is a
// Linear layer and a rank-4 one a Conv2d.
//
// Fuse and Unfuse fold the updates into (and out of) the base weights on the
// host for sampling. Write saves pytorch_lora_weights.safetensors in the
// diffusers layout ("unet.<module>.lora_A.weight"), the kohya layout or the
// pre-PEFT diffusers layout; Read takes those and PEFT's own names, so the
// published LCM-LoRA files load. See Write for where each layout keeps alpha.
//
// Depends on models/nn, models/safetensors and GoMLX's graph package.
package lora
