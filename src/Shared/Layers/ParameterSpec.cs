namespace Cluster.Layers;

/// <summary>How a parameter is initialised.</summary>
public enum Initializer
{
    /// <summary>Zeros (biases).</summary>
    Zeros,

    /// <summary>Ones (batch-norm scales).</summary>
    Ones,

    /// <summary>He/Kaiming normal, std = √(2 / fan_in): keeps the variance through ReLU layers.</summary>
    He,

    /// <summary>Xavier/Glorot normal, std = √(2 / (fan_in + fan_out)): for tanh and sigmoid layers.</summary>
    Xavier,

    /// <summary>Uniform in ±1/√fan_in: PyTorch's default for recurrent layers, where fan_in is the hidden size.</summary>
    Uniform,
}

/// <summary>A parameter a layer declares: its name within the layer, shape, initialisation and whether weight decay applies.</summary>
/// <param name="Name">Name within the layer: <c>weight</c> or <c>bias</c>.</param>
/// <param name="Shape">Shape, in PyTorch's layout (dense [out, in], conv [out, in, kh, kw]).</param>
/// <param name="Init">How it starts.</param>
/// <param name="FanIn">Inputs feeding one output unit.</param>
/// <param name="FanOut">Outputs fed by one input unit.</param>
/// <param name="Decays">True for weights; L2 weight decay leaves biases alone.</param>
public sealed record ParameterSpec(string Name, int[] Shape, Initializer Init, int FanIn, int FanOut, bool Decays);
