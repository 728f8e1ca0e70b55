using Grpc.Core;

namespace Cluster.ParameterServer.Tests;

/// <summary>
/// Ranks: a worker that asks for one (<c>cluster worker --rank R</c>) gets it and reads its shard,
/// whatever the order the workers join in; one that asks for none takes the lowest free; a rank
/// taken, out of range, or not yet free is refused with the status the worker acts on.
/// </summary>
public sealed class MembershipTests
{
    [Fact]
    public void WorkersJoiningInAnyOrderGetTheRanksTheyAskForAndTheClusterIsFullWhenAllHave()
    {
        var members = new Membership(3);
        var third = members.Join("third", 0, rank: 2).Worker!;
        var first = members.Join("first", 0, rank: 0).Worker!;
        Assert.False(members.AllJoined.IsCompleted);
        Assert.Equal(2, members.Joined);
        var second = members.Join("second", 0, rank: 1).Worker!;

        Assert.Equal((0, 0), (first.Id, first.Shard));
        Assert.Equal((1, 1), (second.Id, second.Shard));
        Assert.Equal((2, 2), (third.Id, third.Shard));
        Assert.True(members.AllJoined.IsCompleted);
        Assert.Equal(["first", "second", "third"], members.Snapshot().Select(w => w.Name));
        Assert.Same(third, members.Find(2));
    }

    [Fact]
    public void AWorkerAskingForNoRankTakesTheLowestFree()
    {
        var members = new Membership(3);
        members.Join("asked for 0", 0, rank: 0);
        members.Join("asked for 2", 0, rank: 2);

        var any = members.Join("any", 0).Worker!;

        Assert.Equal((1, 1), (any.Id, any.Shard));
        Assert.True(members.AllJoined.IsCompleted);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(3)]
    public void ARankOutOfRangeIsRefusedNamingTheRanksThereAre(int rank)
    {
        var refused = new Membership(3).Join("w", 0, rank);

        Assert.Null(refused.Worker);
        Assert.Equal(StatusCode.InvalidArgument, refused.Refusal);
        Assert.Equal($"rank {rank} is out of range: this cluster's workers are ranks 0 to 2", refused.Why);
    }

    [Fact]
    public void TwoWorkersAskingForOneRankWhileTheClusterFillsIsAMistakeNamedWithTheHolder()
    {
        var members = new Membership(2);
        members.Join("machine-b", 0, rank: 1);

        var refused = members.Join("machine-c", 0, rank: 1);

        Assert.Equal(StatusCode.AlreadyExists, refused.Refusal);
        Assert.Equal("rank 1 is taken by machine-b: give each worker a --rank of its own", refused.Why);
        Assert.Equal(1, members.Joined);
    }

    [Fact]
    public void AWorkerAskingForARankTakesThePlaceOfThatRanksDepartedWorkerOnceTheClusterIsFull()
    {
        var members = new Membership(3);
        var w0 = members.Join("w0", 0, rank: 0).Worker!;
        var w1 = members.Join("w1", 0, rank: 1).Worker!;
        w0.Active = false;
        w1.Active = false;

        // Not before every rank has joined: the run has not begun, and the place is not free yet.
        var early = members.Join("w1 again", 0, rank: 1);
        Assert.Equal(StatusCode.ResourceExhausted, early.Refusal);
        members.Join("w2", 0, rank: 2);

        // Then it takes the place it asked for, not the first that left.
        var back = members.Join("w1 again", 0, rank: 1).Worker!;
        Assert.Equal((3, 1, 1), (back.Id, back.Shard, back.Replaces));
        Assert.True(w1.Replaced);
        Assert.False(w0.Replaced);

        // The place is held again (by an active worker it may not yet know is dead): wait.
        var held = members.Join("w1 once more", 0, rank: 1);
        Assert.Equal(StatusCode.ResourceExhausted, held.Refusal);
        Assert.Equal("rank 1 is held by w1 again, which is active", held.Why);

        // Its replacement leaving frees the place once more; the new one reads the same shard.
        back.Active = false;
        var third = members.Join("w1 third", 0, rank: 1).Worker!;
        Assert.Equal((4, 1, 3), (third.Id, third.Shard, third.Replaces));
        Assert.Same(third, members.Find(4));
        Assert.Equal(["w0", "w1", "w2", "w1 again", "w1 third"], members.Snapshot().Select(w => w.Name));
    }

    [Fact]
    public void AWorkerLetGoTakesItsOwnPlaceBackOrLearnsAtOnceThatAnotherHasIt()
    {
        var members = new Membership(2);
        var a = members.Join("a", 0).Worker!;
        var b = members.Join("b", 0).Worker!;
        a.Active = false;
        b.Active = false;

        // b comes back first: its own place, not a's, though a left first.
        var bAgain = members.Join("b", 0, previous: b.Id).Worker!;
        Assert.Equal((2, 1, 1), (bAgain.Id, bAgain.Shard, bAgain.Replaces));

        // a's place is taken by a newcomer; a, coming back, is told so and by whom.
        var newcomer = members.Join("c", 0).Worker!;
        Assert.Equal((3, 0), (newcomer.Id, newcomer.Shard));
        var late = members.Join("a", 0, previous: a.Id);
        Assert.Equal(StatusCode.FailedPrecondition, late.Refusal);
        Assert.Equal("worker 0 (a) was let go and worker 3 (c) has taken its place: the run goes on without it", late.Why);

        // A name that is not the one the rank had does not pass for it.
        var impostor = members.Join("not a", 0, previous: a.Id);
        Assert.Equal(StatusCode.ResourceExhausted, impostor.Refusal);
    }
}
