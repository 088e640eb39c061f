import { InvalidGenesisError } from './errors.js'

/** An exact rational number num/den of bigints (den > 0). Parameters are rationals so rewards stay exact. */
export interface Rational {
  num: bigint
  den: bigint
}

export function rational (num: bigint | number, den: bigint | number = 1n): Rational {
  const r = { num: BigInt(num), den: BigInt(den) }
  if (r.den <= 0n || r.num < 0n) {
    throw new InvalidGenesisError(`invalid rational ${r.num}/${r.den}`)
  }
  return r
}

export function add (a: Rational, b: Rational): Rational {
  return { num: a.num * b.den + b.num * a.den, den: a.den * b.den }
}

export function mul (a: Rational, b: Rational): Rational {
  return { num: a.num * b.num, den: a.den * b.den }
}

export function min (a: Rational, b: Rational): Rational {
  return a.num * b.den <= b.num * a.den ? a : b
}

/** floor(a) — the one rounding step of every reward computation */
export function floor (a: Rational): bigint {
  return a.num / a.den
}
