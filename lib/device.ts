// Device names as the API takes and returns them: one type for every option, property and
// return value that names a device, and the canonical form tensors report.

/** Where a tensor lives: 'cpu', 'cuda' (device 0) or 'cuda:N'. Tensors report 'cpu' or 'cuda:N'. */
export type Device = 'cpu' | 'cuda' | `cuda:${number}`;

/** @internal A device as tensors name it: 'cuda' is 'cuda:0'. */
export function deviceName(device: Device): Device {
  if (device === 'cpu') return device;
  return `cuda:${device === 'cuda' ? 0 : Number(device.slice(5))}`;
}
