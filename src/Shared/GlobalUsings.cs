// NOTE: System.Numerics.Tensors also defines a type named Tensor; only its primitives are used here.
global using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
