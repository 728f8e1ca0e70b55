using Cluster.Data;

namespace Cluster.Tests.Data;

public sealed class IdxReaderTests : IDisposable
{
    private static readonly int[] ImageDimensions = [3, 4, 5];
    private readonly ScratchDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    [Theory]
    [InlineData("images-idx3-ubyte", false)]
    [InlineData("images-idx3-ubyte.gz", true)]
    [InlineData("gzip-without-extension", true)]
    public void Read_returns_the_dimensions_and_bytes_that_were_written(string name, bool gzip)
    {
        byte[] data = IdxFiles.Pattern(3 * 4 * 5);
        byte[] file = IdxFiles.Build(ImageDimensions, data);
        string path = _directory.Write(name, gzip ? IdxFiles.Gzip(file) : file);

        IdxArray array = IdxReader.Read(path);

        Assert.Equal(ImageDimensions, array.Dimensions);
        Assert.Equal(data, array.Data);
    }

    [Fact]
    public void Read_handles_rank_1_and_rank_4()
    {
        byte[] labels = [9, 0, 3, 7];
        Assert.Equal(labels, IdxReader.Read(_directory.Write("labels", IdxFiles.Build([4], labels))).Data);

        byte[] data = IdxFiles.Pattern(2 * 3 * 2 * 2);
        IdxArray array = IdxReader.Read(_directory.Write("rank4", IdxFiles.Build([2, 3, 2, 2], data)));
        Assert.Equal([2, 3, 2, 2], array.Dimensions);
        Assert.Equal(data, array.Data);
    }

    [Fact]
    public void Read_from_a_non_seekable_gzip_stream_works()
    {
        byte[] data = IdxFiles.Pattern(60);
        using var stream = new ForwardOnlyStream(IdxFiles.Gzip(IdxFiles.Build(ImageDimensions, data)));

        IdxArray array = IdxReader.Read(stream, "stream");

        Assert.Equal(data, array.Data);
    }

    [Fact]
    public void Read_of_a_large_file_gets_every_byte()
    {
        // Large enough that the stream delivers it in many reads, raw and through gzip.
        byte[] data = IdxFiles.Pattern(1000 * 28 * 28);
        byte[] file = IdxFiles.Build([1000, 28, 28], data);

        Assert.Equal(data, IdxReader.Read(_directory.Write("big", file)).Data);
        Assert.Equal(data, IdxReader.Read(_directory.Write("big.gz", IdxFiles.Gzip(file))).Data);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Truncated_data_says_how_many_bytes_were_expected_and_found(bool gzip)
    {
        byte[] file = IdxFiles.Build(ImageDimensions, IdxFiles.Pattern(60))[..(4 + 12 + 41)];
        string path = _directory.Write("truncated", gzip ? IdxFiles.Gzip(file) : file);

        string message = ReadError(path);

        Assert.Contains("truncated", message, StringComparison.Ordinal);
        Assert.Contains("60", message, StringComparison.Ordinal);
        Assert.Contains("41", message, StringComparison.Ordinal);
    }

    [Fact]
    public void Truncated_header_is_reported()
    {
        byte[] file = IdxFiles.Build(ImageDimensions, IdxFiles.Pattern(60))[..10];

        Assert.Contains("header", ReadError(_directory.Write("short-header", file)), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(new byte[0])]
    [InlineData(new byte[] { 0, 0 })]
    public void File_shorter_than_the_magic_number_is_reported(byte[] file)
    {
        Assert.Contains("magic", ReadError(_directory.Write("tiny", file)), StringComparison.Ordinal);
    }

    [Fact]
    public void Bad_magic_is_reported()
    {
        byte[] file = IdxFiles.Build(ImageDimensions, IdxFiles.Pattern(60));
        file[0] = 0x12;
        file[1] = 0x34;

        Assert.Contains("bad magic number 1234 0803", ReadError(_directory.Write("not-idx", file)), StringComparison.Ordinal);
    }

    [Fact]
    public void Unsupported_element_type_is_reported()
    {
        byte[] file = IdxFiles.Build(0x0D, [2, 2], new byte[16]);

        string message = ReadError(_directory.Write("floats", file));

        Assert.Contains("0x0D", message, StringComparison.Ordinal);
        Assert.Contains("0x08", message, StringComparison.Ordinal);
    }

    [Fact]
    public void Rank_0_and_rank_above_4_are_reported()
    {
        Assert.Contains("rank 0", ReadError(_directory.Write("rank0", IdxFiles.Build([], []))), StringComparison.Ordinal);
        Assert.Contains("rank 5", ReadError(_directory.Write("rank5", IdxFiles.Build([1, 1, 1, 1, 1], [7]))), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-3)]
    public void Non_positive_dimension_is_reported(int size)
    {
        string message = ReadError(_directory.Write("dimension", IdxFiles.Build([2, size], [])));

        Assert.Contains($"dimension 1 has size {size}", message, StringComparison.Ordinal);
    }

    [Fact]
    public void Dimensions_too_large_for_an_array_are_reported_before_allocating()
    {
        string message = ReadError(_directory.Write("huge", IdxFiles.Build([int.MaxValue, int.MaxValue], [])));

        Assert.Contains("more than", message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Trailing_bytes_are_reported(bool gzip)
    {
        byte[] file = [.. IdxFiles.Build(ImageDimensions, IdxFiles.Pattern(60)), 1, 2, 3];
        string path = _directory.Write("trailing", gzip ? IdxFiles.Gzip(file) : file);

        Assert.Contains("3 unexpected bytes", ReadError(path), StringComparison.Ordinal);
    }

    [Fact]
    public void Corrupted_gzip_is_reported()
    {
        byte[] compressed = IdxFiles.Gzip(IdxFiles.Build([100, 28, 28], IdxFiles.Pattern(100 * 28 * 28)));
        for (int i = compressed.Length / 2; i < (compressed.Length / 2) + 16; i++)
        {
            compressed[i] ^= 0xA5;
        }

        Assert.Contains("gzip", ReadError(_directory.Write("corrupt.gz", compressed)), StringComparison.Ordinal);
    }

    [Fact]
    public void Gzip_with_a_wrong_checksum_is_reported()
    {
        byte[] compressed = IdxFiles.Gzip(IdxFiles.Build(ImageDimensions, IdxFiles.Pattern(60)));
        compressed[^8] ^= 0xFF; // first byte of the CRC-32 trailer

        Assert.Contains("gzip", ReadError(_directory.Write("bad-crc.gz", compressed)), StringComparison.Ordinal);
    }

    [Fact]
    public void Cut_off_gzip_is_reported()
    {
        byte[] compressed = IdxFiles.Gzip(IdxFiles.Build([100, 28, 28], IdxFiles.Pattern(100 * 28 * 28)));

        ReadError(_directory.Write("cut.gz", compressed[..(compressed.Length / 2)]));
    }

    [Fact]
    public void Missing_file_is_a_data_format_error_naming_the_path()
    {
        string path = System.IO.Path.Combine(_directory.Path, "no-such-file");

        Assert.Contains("does not exist", ReadError(path), StringComparison.Ordinal);
    }

    [Fact]
    public void Stream_errors_name_the_source()
    {
        using var stream = new MemoryStream([1, 2, 3, 4, 5]);

        var error = Assert.Throws<DataFormatException>(() => IdxReader.Read(stream, "resource:labels"));

        Assert.Contains("'resource:labels'", error.Message, StringComparison.Ordinal);
    }

    /// <summary>Reads <paramref name="path"/>, expecting a one-line <see cref="DataFormatException"/> that names it.</summary>
    private static string ReadError(string path)
    {
        var error = Assert.Throws<DataFormatException>(() => IdxReader.Read(path));
        Assert.Contains($"'{path}'", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', error.Message);
        Assert.DoesNotContain('\r', error.Message);
        return error.Message;
    }

    /// <summary>A stream that can only be read forwards, like a network or resource stream.</summary>
    private sealed class ForwardOnlyStream(byte[] bytes) : Stream
    {
        private readonly MemoryStream _inner = new(bytes);

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override int Read(byte[] buffer, int offset, int count) => _inner.Read(buffer, offset, Math.Min(count, 7));

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                _inner.Dispose();
            }
            base.Dispose(disposing);
        }
    }
}
