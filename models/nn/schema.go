package nn

// Schema collects weight shapes by state-dict name as a model's ParamShapes
// walks its architecture; each torch layer adds its weight and bias.
type Schema map[string][]int

// Linear adds torch.nn.Linear(in, out): weight [out, in], bias [out] when bias.
func (s Schema) Linear(name string, in, out int, bias bool) {
	s[name+".weight"] = []int{out, in}
	if bias {
		s[name+".bias"] = []int{out}
	}
}

// Conv adds torch.nn.Conv2d(in, out, k): weight [out, in, k, k], bias [out].
func (s Schema) Conv(name string, in, out, k int) {
	s[name+".weight"] = []int{out, in, k, k}
	s[name+".bias"] = []int{out}
}

// Norm adds a GroupNorm or LayerNorm over ch channels: weight and bias [ch].
func (s Schema) Norm(name string, ch int) {
	s[name+".weight"] = []int{ch}
	s[name+".bias"] = []int{ch}
}
