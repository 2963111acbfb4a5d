using CsiCache.Controller;
using CsiCache.Node;

namespace CsiCache.Node.Tests;

public sealed class NodeStateTests
{
    [Fact]
    public void State_SurvivesReopen_AndReconcileDropsWhatIsNotMounted()
    {
        var dir = Directory.CreateTempSubdirectory("csicache-state-");
        try
        {
            var state = new NodeState(dir.FullName);
            state.SetStaged(new StagedVolume("local-a", VolumeKind.Local, "/staging/a", "k"));
            state.SetStaged(new StagedVolume("local-b", VolumeKind.Local, "/staging/b", "k"));
            state.SetPublished(new PublishedVolume("local-a", "/target/a", ReadOnly: false));

            var reopened = new NodeState(dir.FullName);
            Assert.Equal(2, reopened.Staged().Count);
            Assert.Equal("/staging/a", reopened.FindStaged("local-a")!.StagingPath);
            Assert.False(reopened.FindPublished("/target/a")!.ReadOnly);

            var dropped = reopened.Reconcile(path => path is "/staging/a" or "/target/a");
            Assert.Equal(["staged local-b at /staging/b"], dropped);
            Assert.Null(new NodeState(dir.FullName).FindStaged("local-b"));
            Assert.Empty(Directory.GetFiles(dir.FullName, "*.tmp*"));
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
