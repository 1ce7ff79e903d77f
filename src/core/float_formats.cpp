#include "core/float_formats.h"

#include <bit>
#include <cmath>
#include <limits>

namespace loom {

const float kE2M1Values[16] = {0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  3.0f,  4.0f,  6.0f,
                               -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};

float bf16_to_float(uint16_t bits) {
  return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16);
}

uint16_t float_to_bf16(float value) {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  if (std::isnan(value)) return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  // Adding 0x7FFF plus the lowest kept bit rounds half to even; a carry into the exponent is the correct result,
  // including the overflow of the largest finite values to infinity.
  const uint32_t rounded = bits + 0x7FFFu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(rounded >> 16);
}

float f16_to_float(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1Fu;
  const uint32_t mantissa = bits & 0x3FFu;
  if (exponent == 0) {
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -magnitude : magnitude;
  }
  if (exponent == 31) {
    // Keep the payload and force the quiet bit so a signalling NaN does not trap later.
    const uint32_t nan_or_inf = 0x7F800000u | (mantissa << 13) | (mantissa ? 0x00400000u : 0u);
    return std::bit_cast<float>(sign | nan_or_inf);
  }
  return std::bit_cast<float>(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

uint16_t float_to_f16(float value) {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  const auto sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t magnitude = bits & 0x7FFFFFFFu;
  if (magnitude > 0x7F800000u) return sign | 0x7E00u;
  if (magnitude >= 0x477FF000u) return sign | 0x7C00u;  // >= 65520 rounds to infinity (or is infinity)
  const int exponent = static_cast<int>(magnitude >> 23) - 127;
  const uint32_t mantissa = magnitude & 0x7FFFFFu;
  if (exponent >= -14) {
    uint32_t half = (static_cast<uint32_t>(exponent + 15) << 10) | (mantissa >> 13);
    const uint32_t rest = mantissa & 0x1FFFu;
    if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) ++half;  // a carry into the exponent is correct
    return static_cast<uint16_t>(sign | half);
  }
  // Subnormal result: express the value in units of 2^-24. The float32 significand m (24 bits, implicit one
  // included) is worth m·2^(exponent-23), so the shift right is -(exponent+1).
  if (exponent < -25) return sign;  // below 2^-25, half the smallest subnormal: rounds to zero
  const uint32_t significand = mantissa | 0x800000u;
  const int shift = -(exponent + 1);
  uint32_t half = significand >> shift;
  const uint32_t rest = significand & ((1u << shift) - 1u);
  const uint32_t midpoint = 1u << (shift - 1);
  if (rest > midpoint || (rest == midpoint && (half & 1u))) ++half;
  return static_cast<uint16_t>(sign | half);
}

float e4m3_to_float(uint8_t bits) {
  const bool negative = (bits & 0x80u) != 0;
  const int exponent = (bits >> 3) & 0xF;
  const int mantissa = bits & 0x7;
  if (exponent == 15 && mantissa == 7) return std::numeric_limits<float>::quiet_NaN();
  const float magnitude = exponent == 0 ? std::ldexp(static_cast<float>(mantissa), -9)
                                        : std::ldexp(static_cast<float>(8 + mantissa), exponent - 10);
  return negative ? -magnitude : magnitude;
}

uint8_t float_to_e4m3(float value) {
  const uint8_t sign = std::signbit(value) ? 0x80 : 0x00;
  if (std::isnan(value)) return sign | 0x7F;
  const float magnitude = std::fabs(value);
  if (magnitude >= 448.0f) return sign | 0x7E;  // saturate (includes infinity)
  if (magnitude < 0x1p-6f) {
    // Subnormal range: a multiple of 2^-9. Scaling by a power of two is exact, rint rounds half to even, and a
    // result of 8 is the smallest normal (exponent field 1, mantissa 0), whose code is also 8.
    return static_cast<uint8_t>(sign | static_cast<uint8_t>(std::rint(std::ldexp(magnitude, 9))));
  }
  int frexp_exponent = 0;
  std::frexp(magnitude, &frexp_exponent);
  const int exponent = frexp_exponent - 1;  // magnitude in [2^exponent, 2^(exponent+1))
  // Eight steps per binade; 16 means the next binade with mantissa 0, which the code arithmetic absorbs.
  const int steps = static_cast<int>(std::rint(std::ldexp(magnitude, 3 - exponent)));
  return static_cast<uint8_t>(sign | (((exponent + 7) << 3) + (steps - 8)));
}

float e8m0_to_float(uint8_t bits) {
  if (bits == 0xFF) return std::numeric_limits<float>::infinity();
  return std::ldexp(1.0f, static_cast<int>(bits) - 127);
}

uint8_t float_to_e8m0(float value) {
  if (std::isnan(value) || value == std::numeric_limits<float>::infinity()) return 0xFF;
  if (!(value > 0.0f)) return 0x00;
  int frexp_exponent = 0;
  const float fraction = std::frexp(value, &frexp_exponent);  // value = fraction·2^e, fraction in [0.5, 1)
  // round(log2 value) = e-1 plus one when 2·fraction > sqrt(2), i.e. fraction² > 1/2; the square of a float is
  // exact in double, so the comparison is exact.
  const double square = static_cast<double>(fraction) * static_cast<double>(fraction);
  int exponent = frexp_exponent - 1 + (square > 0.5 ? 1 : 0);
  if (exponent < -127) exponent = -127;
  if (exponent > 127) exponent = 127;
  return static_cast<uint8_t>(exponent + 127);
}

float e2m1_to_float(uint8_t code) {
  return kE2M1Values[code & 0xF];
}

uint8_t float_to_e2m1(float value) {
  if (std::isnan(value)) return 0x7;
  const uint8_t sign = std::signbit(value) ? 0x8 : 0x0;
  const float a = std::fabs(value);
  uint8_t code = 0;
  if (a > 5.0f) {
    code = 7;
  } else if (a >= 3.5f) {
    code = 6;
  } else if (a > 2.5f) {
    code = 5;
  } else if (a >= 1.75f) {
    code = 4;
  } else if (a > 1.25f) {
    code = 3;
  } else if (a >= 0.75f) {
    code = 2;
  } else if (a > 0.25f) {
    code = 1;
  }
  return sign | code;
}

}  // namespace loom
