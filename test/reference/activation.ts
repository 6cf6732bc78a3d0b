// Float64 references of the activations: gelu (tanh form), silu, relu, tanh; shared by the
// elementwise ops and matmul's fused epilogue.

export type ActivationName = 'gelu' | 'silu' | 'relu' | 'tanh';

// gelu, tanh form: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
export function gelu1(x: number): number {
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
}
// silu: x * sigmoid(x)
export function silu1(x: number): number {
  return x / (1 + Math.exp(-x));
}
export function relu1(x: number): number {
  return x > 0 ? x : 0;
}

export const activations: Record<ActivationName, (x: number) => number> = {
  gelu: gelu1,
  silu: silu1,
  relu: relu1,
  tanh: Math.tanh,
};

export function activation(x: ArrayLike<number>, name: ActivationName): Float64Array {
  const f = activations[name];
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = f(x[i]);
  return out;
}
export const gelu = (x: ArrayLike<number>) => activation(x, 'gelu');
export const silu = (x: ArrayLike<number>) => activation(x, 'silu');
export const relu = (x: ArrayLike<number>) => activation(x, 'relu');
