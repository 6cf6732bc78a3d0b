'use strict';
// This machine's target, as the platform packages are named (lib/binding.ts platformTarget() is
// the loader's own, for an installed package): linux-x64-gnu, linux-arm64-musl, darwin-arm64...
function hostTarget() {
  if (process.platform !== 'linux') return `${process.platform}-${process.arch}`;
  return `linux-${process.arch}-${process.report.getReport().header.glibcVersionRuntime ? 'gnu' : 'musl'}`;
}
module.exports = { hostTarget };
