// The compiled model: a native plan run per request as one unit on the device queue, with its
// state (KV caches) per batch of sequences, profiling and memory figures.
import '../dispose';
import { Handle, Meta, native } from '../binding';
import { describe, IgnisError, typeError } from '../errors';
import { DType } from '../dtype';
import { handle, Tensor } from '../tensor';
import type { Device } from '../device';
import * as v from '../validate';
import type { Dim } from './builder';

function dimsStr(d: readonly Dim[]): string {
  return `[${d.join(', ')}]`;
}

/** KV caches (and any other state) of one model, for one independent batch of sequences. */
export class ModelState {
  /** @internal */ handle: Handle | null;
  /** @internal */ readonly owner: Model;
  /** @internal */
  constructor(owner: Model, h: Handle) {
    this.owner = owner;
    this.handle = h;
  }
  get disposed(): boolean {
    return this.handle === null;
  }
  /**
   * Starts the caches over for a new batch of sequences (positions from 0 again), keeping their
   * memory. A run that failed leaves its state failed, so later runs with it reject rather than
   * read half-written caches; reset() clears that, in queue order.
   */
  reset(): void {
    if (!this.handle) throw new IgnisError('E_DISPOSED', 'modelState.reset: the state was disposed');
    native().planStateReset(this.handle);
  }

  /** Frees the caches now (runs already queued keep what they use). Safe to call twice. */
  dispose(): void {
    this.handle?.dispose();
    this.handle = null;
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}

export type RunInputs = Record<string, Tensor | number>;

export interface RunOptions {
  /** the KV caches (from createState()) a model with attention caches needs */
  state?: ModelState;
  /**
   * Tensors to write outputs into instead of making new ones (any subset, by output name):
   * each must have the output's exact shape, dtype and device, and share no memory with the
   * inputs, the state or the weights. The run returns them. A decode loop that reuses one
   * logits tensor saves an allocation and a JS object per step.
   */
  outputs?: Record<string, Tensor>;
}

export class Model {
  /** as given to compile ('cpu', 'cuda' or 'cuda:N') */
  readonly device: Device;
  readonly inputs: readonly { name: string; dims: Dim[]; dtype: DType }[];
  readonly scalars: readonly string[];
  readonly outputs: readonly string[];
  /** each symbolic dimension's maximum */
  readonly max: Readonly<Record<string, number>>;
  private plan: Handle | null;

  /** @internal */
  constructor(plan: Handle, device: Device, inputs: { name: string; dims: Dim[]; dtype: DType }[], scalars: string[], outputs: string[], max: Record<string, number>) {
    this.plan = plan;
    this.device = device;
    this.inputs = inputs;
    this.scalars = scalars;
    this.outputs = outputs;
    this.max = Object.freeze(max);
  }

  private live(op: string): Handle {
    if (!this.plan) throw new IgnisError('E_DISPOSED', `model.${op}: the model was disposed`);
    return this.plan;
  }

  /** Bytes: weights (held, shared with the tensors given), the activation arena, and one state. */
  memory(): { weights: number; arena: number; state: number } {
    return native().planMemory(this.live('memory'));
  }

  /**
   * Step timing: profile(true) makes every later run time each step; profile() returns the last
   * finished profiled run's steps ({ op, ns }, in order; empty before one), profile(false) stops.
   */
  profile(on?: boolean): { op: string; ns: number }[] {
    if (on !== undefined && typeof on !== 'boolean') throw typeError(`model.profile: on must be a boolean, got ${describe(on)}`);
    return native().planProfile(this.live('profile'), on);
  }

  /**
   * The profiled runs finished since profile(true) (turned on from off), and their steps' time
   * summed: with runs queued back to back, wall time minus `ns` is what the runs cost beyond
   * their kernels.
   */
  profileTotal(): { runs: number; ns: number } {
    const [runs, ns] = native().planProfileTotal(this.live('profileTotal'));
    return { runs, ns };
  }

  /** Fresh state (zeroed KV caches) for one batch of sequences; runs with it queue in order. */
  createState(): ModelState {
    return new ModelState(this, native().planState(this.live('createState')));
  }

  /**
   * Enqueues the whole plan and returns its outputs at once (not yet computed: await their
   * data(), or use run()). Tensors for the inputs, numbers for the scalars.
   */
  enqueue(inputs: RunInputs, opts?: RunOptions): Record<string, Tensor> {
    return this.launch(inputs, opts, false).outs;
  }

  /** Enqueues the plan and resolves with its outputs once they are computed. */
  async run(inputs: RunInputs, opts?: RunOptions): Promise<Record<string, Tensor>> {
    const { outs, done } = this.launch(inputs, opts, true);
    await done;
    return outs;
  }

  // A run's JS side is on the path of every decode step, so the common case is checked in
  // straight loops; anything unusual goes through the checks that name the problem.
  private launch(inputs: RunInputs, opts: RunOptions | undefined, settled: boolean): { outs: Record<string, Tensor>; done?: Promise<void> } {
    const op = 'run';
    const plan = this.live(op);
    if (typeof inputs !== 'object' || inputs === null) throw typeError(`model.${op}: inputs must be an object of tensors and scalars, got ${describe(inputs)}`);
    let st: Handle | null = null;
    let given: Tensor[] | undefined;
    if (opts !== undefined) {
      const o = v.options<RunOptions>(op, opts, ['state', 'outputs']);
      const state = o.state;
      if (state !== undefined) {
        if (!(state instanceof ModelState) || state.owner !== this) throw typeError(`model.${op}: state must come from this model's createState(), got ${describe(state)}`);
        if (!state.handle) throw new IgnisError('E_DISPOSED', `model.${op}: the state was disposed`);
        st = state.handle;
      }
      if (o.outputs !== undefined) given = this.givenOutputs(op, o.outputs);
    }
    const hs: Handle[] = new Array(this.inputs.length);
    for (let i = 0; i < hs.length; i++) {
      const t = inputs[this.inputs[i].name];
      hs[i] = Tensor.is(t) && t._h !== null ? t._h : this.badInput(op, inputs, i, t);
    }
    const sc: number[] = new Array(this.scalars.length);
    for (let i = 0; i < sc.length; i++) {
      const x = inputs[this.scalars[i]];
      if (x === undefined) {
        this.unknownInput(op, inputs);
        throw new IgnisError('E_ARGUMENT', `model.${op}: missing scalar '${this.scalars[i]}'`);
      }
      sc[i] = v.int(`model.${op}`, this.scalars[i], x, 0);
    }
    // Every expected name was present, so more keys than names means an unknown one.
    if (Object.keys(inputs).length !== hs.length + sc.length) this.unknownInput(op, inputs);
    let gh: (Handle | null)[] | undefined;
    if (given) {
      gh = new Array(given.length);
      for (let i = 0; i < given.length; i++) gh[i] = given[i] ? given[i]._h : null;
    }
    const r = native().planRun(plan, hs, sc, st, settled, gh);
    const outs: Record<string, Tensor> = {};
    for (let i = 0; i < this.outputs.length; i++) {
      if (given && given[i]) {
        outs[this.outputs[i]] = given[i];
        continue;
      }
      const [h, meta] = r[i] as [Handle, Meta];
      outs[this.outputs[i]] = new Tensor(h, meta);
    }
    return { outs, done: settled ? (r[this.outputs.length] as Promise<void>) : undefined };
  }

  // The outputs option as one slot per output (undefined: make a fresh one); native checks the
  // shapes, dtypes and shared memory, naming the output.
  private givenOutputs(op: string, outputs: unknown): Tensor[] {
    if (typeof outputs !== 'object' || outputs === null || Array.isArray(outputs))
      throw typeError(`model.${op}: outputs must be an object of tensors by output name, got ${describe(outputs)}`);
    const o = outputs as Record<string, unknown>;
    const given: Tensor[] = new Array(this.outputs.length);
    let n = 0;
    for (let i = 0; i < given.length; i++) {
      const t = o[this.outputs[i]];
      if (t === undefined) continue;
      if (!Tensor.is(t)) throw typeError(`model.${op}: output '${this.outputs[i]}' must be a Tensor, got ${describe(t)}`);
      handle(op, `output '${this.outputs[i]}'`, t); // a disposed tensor: E_DISPOSED
      given[i] = t;
      n++;
    }
    if (Object.keys(o).length !== n)
      for (const k of Object.keys(o))
        if (!this.outputs.includes(k)) throw new IgnisError('E_ARGUMENT', `model.${op}: unknown output '${k}' (outputs: ${this.outputs.join(', ')})`);
    return given;
  }

  private unknownInput(op: string, inputs: RunInputs): void {
    for (const k of Object.keys(inputs))
      if (!this.inputs.some((i) => i.name === k) && !this.scalars.includes(k))
        throw new IgnisError('E_ARGUMENT', `model.${op}: unknown input '${k}' (inputs: ${[...this.inputs.map((i) => i.name), ...this.scalars].join(', ')})`);
  }

  private badInput(op: string, inputs: RunInputs, i: number, t: unknown): never {
    const { name, dims, dtype } = this.inputs[i];
    if (t === undefined) {
      this.unknownInput(op, inputs);
      throw new IgnisError('E_ARGUMENT', `model.${op}: missing input '${name}' ${dimsStr(dims)} ${dtype}`);
    }
    if (!Tensor.is(t)) throw typeError(`model.${op}: input '${name}' must be a Tensor, got ${describe(t)}`);
    return handle(op, `input '${name}'`, t) as never; // a disposed tensor: handle() throws E_DISPOSED
  }

  dispose(): void {
    if (this.plan) {
      this.plan.dispose();
      this.plan = null;
    }
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}

