using System.Buffers;
using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using Microsoft.AspNetCore.Connections;

namespace Cluster.ParameterServer;

/// <summary>
/// Kestrel's memory in large blocks. Kestrel's own pool hands out 4 KiB blocks and its socket
/// transport reads into one block at a time, so a 100 MiB push costs 25,600 receive system calls
/// and as many pipe segments; with 64 KiB blocks a read takes what the kernel has, up to 64 KiB.
/// Blocks are pinned, reused and never given back: a server holds at most its HTTP/2 windows'
/// worth of them.
/// </summary>
internal sealed class LargeBlockMemoryPoolFactory(int blockBytes) : IMemoryPoolFactory<byte>
{
    /// <summary>The block size Cluster's server uses: 64 KiB.</summary>
    public const int DefaultBlockBytes = 64 * 1024;

    /// <inheritdoc/>
    public MemoryPool<byte> Create(MemoryPoolOptions? options = null) => new LargeBlockMemoryPool(blockBytes);
}

/// <summary>A pool of pinned blocks of one size; see <see cref="LargeBlockMemoryPoolFactory"/>.</summary>
internal sealed class LargeBlockMemoryPool(int blockBytes) : MemoryPool<byte>
{
    private readonly ConcurrentQueue<Block> _free = new();

    /// <inheritdoc/>
    public override int MaxBufferSize => blockBytes;

    /// <inheritdoc/>
    public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
    {
        if (minBufferSize > blockBytes)
        {
            // NOTE: pipes never ask for more than MaxBufferSize; anyone else gets a one-off block.
            return new Block(null, minBufferSize);
        }
        return _free.TryDequeue(out var block) ? block : new Block(this, blockBytes);
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        _free.Clear();
    }

    private sealed class Block(LargeBlockMemoryPool? pool, int bytes) : IMemoryOwner<byte>
    {
        public Memory<byte> Memory { get; } = MemoryMarshal.CreateFromPinnedArray(GC.AllocateUninitializedArray<byte>(bytes, pinned: true), 0, bytes);

        public void Dispose() => pool?._free.Enqueue(this);
    }
}
