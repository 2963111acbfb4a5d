// FUSE is Linux-only; so are these tests.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
[assembly: Xunit.AssemblyFixture(typeof(CsiCache.Fuse.Tests.SharedSourceCleanup))]
