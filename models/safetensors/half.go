package safetensors

import "math"

// Half-precision conversions, bit-exact with IEEE 754 binary16 and with bfloat16 as PyTorch stores it
// (the top 16 bits of a float32). Narrowing rounds to nearest, ties to even, as torch's .half() and
// .bfloat16() do; widening is exact.

// Float16ToFloat32 widens an IEEE binary16 value (exactly).
func Float16ToFloat32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f: // Inf or NaN; keep the payload's top bits.
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp != 0: // normal: rebias 15 -> 127.
		return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
	case mant == 0:
		return math.Float32frombits(sign)
	}
	// Subnormal binary16 is mant * 2^-24, a normal float32.
	v := float32(mant) * (1.0 / (1 << 24))
	if sign != 0 {
		v = -v
	}
	return v
}

// Float32ToFloat16 narrows to IEEE binary16, rounding to nearest even; overflow gives ±Inf and NaN
// stays NaN (quiet).
func Float32ToFloat16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00 | uint16(mant>>13)
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15 // binary16 biased exponent
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		// Result is subnormal (or zero): value = mant24 * 2^(exp-150) = m * 2^-24 with m = mant24 >> (14-e).
		if e < -10 {
			return sign // below half the smallest subnormal: rounds to zero
		}
		mant |= 0x800000
		shift := uint32(14 - e)
		m := mant >> shift
		rem := mant & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rem > half || (rem == half && m&1 == 1) {
			m++ // may carry into the exponent field, which is the right encoding
		}
		return sign | uint16(m)
	}
	out := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && out&1 == 1) {
		out++ // a carry may reach the exponent, up to 0x7c00 = Inf, which is right
	}
	return sign | uint16(out)
}

// BFloat16ToFloat32 widens a bfloat16 value (exactly).
func BFloat16ToFloat32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// Float32ToBFloat16 narrows to bfloat16, rounding to nearest even; NaN stays NaN (quiet).
func Float32ToBFloat16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x40
	}
	return uint16((b + 0x7fff + (b>>16)&1) >> 16)
}
