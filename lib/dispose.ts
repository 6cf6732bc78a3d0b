// Symbol.dispose and Symbol.asyncDispose, which key the cleanup of `using` and `await using` on
// tensors, models, caches and files. Node has both from 20.4 on (Symbol.for('nodejs.dispose') and
// Symbol.for('nodejs.asyncDispose') until V8 ships its own); where a runtime lacks one it is
// defined here as that same symbol, as Node does, before any class names a method by it.
// Imported for this effect by each module that declares such a method; its declaration file
// brings in Node's types, which declare both symbols and Disposable for a consumer on any lib.
/// <reference types="node" preserve="true" />

for (const [name, key] of [['dispose', 'nodejs.dispose'], ['asyncDispose', 'nodejs.asyncDispose']] as const) {
  if (typeof (Symbol as unknown as Record<string, unknown>)[name] !== 'symbol')
    Object.defineProperty(Symbol, name, { value: Symbol.for(key), configurable: false, enumerable: false, writable: false });
}

export {};
