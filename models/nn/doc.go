// Package nn holds the GoMLX building blocks golcm's networks are made of —
// Linear, Conv2d, GroupNorm, LayerNorm, attention, activations, nearest
// upsampling — and the plumbing that binds a model's named weights to graph
// nodes.
//
// Weights are addressed by their diffusers/transformers state-dict names
// ("down_blocks.1.attentions.0.proj_in.weight"), so loading and exporting a
// model is a name lookup, not a translation. A Scope walks those names as the
// network is built; every layer asks its Scope for the parameters it needs, and
// the Scope reports names that were never asked for.
//
// LoRA adapters hook into Linear and Conv2d through the Scope, so a network
// definition does not change when adapters are added.
//
// Depends on GoMLX's graph and tensors packages only.
package nn
