using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Grpc.Core;
using static CsiCache.EndToEnd.Datasets;

namespace CsiCache.EndToEnd;

/// <summary>An origin that accepts connections and never answers: the worst case for a stage, which must still end.</summary>
public sealed class OriginTimeoutTests
{
    [Fact]
    public async Task Stage_OriginThatNeverAnswers_UnavailableWithinTheRetryBudget_NothingMounted()
    {
        // 2 s per request and 3 retries: the dataset layer gives up after roughly 4 × 2 s plus back-off.
        await using var plugin = await PluginProcess.StartAsync("--origin-timeout", "2s");
        using var blackhole = new TcpListener(IPAddress.Loopback, 0);
        blackhole.Start();
        var held = new List<Socket>();
        using var stop = new CancellationTokenSource();
        var accepting = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                held.Add(await blackhole.AcceptSocketAsync(stop.Token));
            }
        }, TestContext.Current.CancellationToken);

        try
        {
            await using var kubelet = new Kubelet(plugin);
            var port = ((IPEndPoint)blackhole.LocalEndpoint).Port;
            var volume = await kubelet.CreateDatasetAsync($"http://127.0.0.1:{port}/dataset/");
            var clock = Stopwatch.StartNew();
            var error = await Assert.ThrowsAsync<RpcException>(() => kubelet.StageAsync(volume));
            clock.Stop();

            Assert.Equal(StatusCode.Unavailable, error.StatusCode);
            Assert.True(clock.Elapsed > TimeSpan.FromSeconds(2), $"failed after {clock.Elapsed}: before even one timeout?");
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(40), $"stage took {clock.Elapsed} to give up");
            Assert.True(held.Count > 0, "the origin was never even asked");
            AssertNotMounted(plugin.Paths.StagingPath(volume.VolumeId));
            Assert.DoesNotContain(HostMounts.Under(plugin.Root), m => m.IsFuse);
        }
        finally
        {
            await stop.CancelAsync();
            blackhole.Stop();
            try
            {
                await accepting;
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                // The accept loop ends by cancellation.
            }

            foreach (var socket in held)
            {
                socket.Dispose();
            }
        }
    }
}
