// The float64 references every kernel is tested against, in one import.

export * from './activation';
export * from './attention';
export * from './binary';
export * from './compare';
export * from './embedding';
export * from './matmul';
export * from './norm';
export * from './quant';
export * from './rng';
export * from './rope';
export * from './round';
export * from './shape';
export * from './softmax';
