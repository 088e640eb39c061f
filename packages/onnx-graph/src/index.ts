/**
 * @packageDocumentation
 *
 * A typed ONNX graph builder with static shape inference and reverse-mode autodiff. Graphs serialize to
 * ONNX ModelProto bytes (opset 23) that onnxruntime loads with `InferenceSession.create(bytes)`.
 */

export * from './errors.js'
export * from './types.js'
export { GraphBuilder, floats, onnxCode, toTyped } from './graph.js'
export type { AttrValue, GraphOptions, GraphOutput, Node, OpOptions, TensorData, Value } from './graph.js'
export { toModelProto, liveNodes, IR_VERSION, OPSET } from './export.js'
export type { ExportOptions } from './export.js'
export { gradients, activationsToSave, sumToShape, VJP_RULES } from './autodiff.js'
export type { GradientSeed, GradientsOptions, VjpContext, VjpRule } from './autodiff.js'
export { onnx } from './onnx.js'
