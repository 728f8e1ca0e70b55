using Cluster.Tensors;

namespace Cluster.Tests.Tensors;

public sealed class ThreadTeamTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void Run_calls_each_member_exactly_once_with_the_caller_as_member_0(int size)
    {
        using var team = new ThreadTeam(size);
        int caller = Environment.CurrentManagedThreadId;
        for (int round = 0; round < 50; round++)
        {
            int[] calls = new int[size];
            int[] threads = new int[size];

            team.Run(member =>
            {
                Interlocked.Increment(ref calls[member]);
                threads[member] = Environment.CurrentManagedThreadId;
            });

            Assert.All(calls, count => Assert.Equal(1, count));
            Assert.Equal(caller, threads[0]);
            Assert.Equal(size, threads.Distinct().Count());
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(7)]
    [InlineData(1001)]
    public void For_covers_the_range_exactly_once_in_the_ranges_of_Partition(int count)
    {
        using var team = new ThreadTeam(3);
        int[] visits = new int[count];
        var ranges = new List<(int Start, int End)>();

        team.For(count, (start, end) =>
        {
            lock (ranges)
            {
                ranges.Add((start, end));
            }
            for (int i = start; i < end; i++)
            {
                Interlocked.Increment(ref visits[i]);
            }
        });

        Assert.All(visits, v => Assert.Equal(1, v));
        int parts = Math.Min(3, count);
        var expected = Enumerable.Range(0, parts).Select(part => ThreadTeam.Partition(count, parts, part));
        Assert.Equal(expected, ranges.OrderBy(r => r.Start));
    }

    [Theory]
    [InlineData(10, 3)]
    [InlineData(3, 3)]
    [InlineData(2, 5)]
    [InlineData(1000, 7)]
    public void Partition_splits_into_contiguous_parts_that_differ_by_at_most_one(int count, int parts)
    {
        int next = 0;
        var sizes = new List<int>();
        for (int part = 0; part < parts; part++)
        {
            var (start, end) = ThreadTeam.Partition(count, parts, part);
            Assert.Equal(next, start);
            sizes.Add(end - start);
            next = end;
        }

        Assert.Equal(count, next);
        Assert.InRange(sizes.Max() - sizes.Min(), 0, 1);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public void An_exception_in_a_member_is_rethrown_on_the_caller_and_the_team_stays_usable(int failing)
    {
        using var team = new ThreadTeam(2);

        var error = Assert.Throws<InvalidOperationException>(() => team.Run(member =>
        {
            if (member == failing)
            {
                throw new InvalidOperationException($"member {member} failed");
            }
        }));

        Assert.Equal($"member {failing} failed", error.Message);
        int[] calls = new int[2];
        team.Run(member => calls[member]++);
        Assert.Equal([1, 1], calls);
    }

    [Fact]
    public void Work_started_inside_a_body_runs_inline_on_that_thread()
    {
        using var team = new ThreadTeam(2);
        int[] nestedRunCalls = new int[2];

        team.Run(member =>
        {
            Assert.True(ThreadTeam.IsInsideTeam);
            Assert.Equal(1, team.EffectiveSize);
            int thread = Environment.CurrentManagedThreadId;
            var ranges = new List<(int Start, int End, int Thread)>();
            team.For(10, (start, end) => ranges.Add((start, end, Environment.CurrentManagedThreadId)));
            int runs = 0;
            team.Run(_ => runs++);
            Assert.Equal((0, 10, thread), Assert.Single(ranges));
            nestedRunCalls[member] = runs;
        });

        Assert.Equal([1, 1], nestedRunCalls);
        Assert.False(ThreadTeam.IsInsideTeam);
        Assert.Equal(2, team.EffectiveSize);
    }

    [Fact]
    public void A_team_needs_at_least_one_member()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new ThreadTeam(0));
        Assert.Equal(1, ThreadTeam.Single.Size);
    }
}
