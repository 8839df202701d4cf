// Package train is the optimizer machinery every golcm training task shares:
// a compiled program with named inputs and outputs (Program), and a Trainer
// that turns a task's loss graph into one compiled optimizer step with
// gradient accumulation, global-norm clipping, AdamW and an optional EMA of
// the trained weights.
//
// A task supplies only what is its own, in a Task:
//
//	task := train.Task{
//		Frozen:  []train.Group{{Name: "teacher", Weights: teacher}}, // read, never updated
//		Trained: student,                                            // updated in place
//		EMA:     true,                                               // keep group "ema"
//		Inputs:  []string{"latents", "noise", "t"},                  // the batch, by name
//		Loss: func(w map[string]*nn.Params, in map[string]*Node) (*Node, map[string]*Node) {
//			pred := model(w[train.TrainedGroup].Root(""), in["latents"], in["t"])
//			return losses.Loss(losses.L2, pred, in["noise"], 0), nil
//		},
//		Optimizer: train.AdamW{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 1e-2, MaxGradNorm: 1},
//	}
//	tr, err := train.New(backend, task)
//	res, err := tr.Step(map[string]*tensors.Tensor{"latents": x, "noise": n, "t": t}, lr)
//
// and gets back, per Step, the loss, the global gradient norm before
// clipping, whether every updated weight is finite, and the extra outputs
// its Loss named. The learning rate is a per-step input, so any schedule is
// the caller's host arithmetic; the AdamW bias corrections are computed here.
//
// Weight groups the loss may read, by name: each Frozen group's Name,
// TrainedGroup and (with EMA) EMAGroup. Gradients are taken with respect to
// every weight of the trained group; the loss must read all of them (and of
// every group: nn.Compile reports a weight nothing used).
//
// The arithmetic is PyTorch's: accelerate's accumulation (each micro-batch's
// gradients divided by AccumulationSteps and summed),
// torch.nn.utils.clip_grad_norm_ (coefficient max_norm/(norm+1e-6), at
// most 1), torch.optim.AdamW (decoupled decay p·(1-lr·wd), then the
// bias-corrected update with float64 corrections fed as float32 scalars),
// and the EMA target ← μ·target + (1-μ)·trained after the update.
//
// Depends on GoMLX and models/nn.
package train
