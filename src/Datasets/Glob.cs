namespace CsiCache.Datasets;

/// <summary>
/// Path globs for the <c>prefetch</c> parameter, matched per '/'-separated segment: <c>*</c> is any
/// run of characters within a segment, <c>?</c> one character, and a whole segment <c>**</c> any
/// number of segments (including none). Ordinal and case-sensitive, like the paths themselves.
/// </summary>
internal static class Glob
{
    public static bool IsMatch(string pattern, string path) =>
        MatchSegments(pattern.Split('/'), 0, path.Split('/'), 0);

    private static bool MatchSegments(string[] pattern, int p, string[] path, int s)
    {
        while (p < pattern.Length)
        {
            if (pattern[p] == "**")
            {
                for (int skip = s; skip <= path.Length; skip++)
                {
                    if (MatchSegments(pattern, p + 1, path, skip))
                    {
                        return true;
                    }
                }
                return false;
            }
            if (s >= path.Length || !MatchSegment(pattern[p], path[s]))
            {
                return false;
            }
            p++;
            s++;
        }
        return s == path.Length;
    }

    /// <summary>Wildcard match of one segment, iterative with backtracking to the last '*'.</summary>
    private static bool MatchSegment(string pattern, string text)
    {
        int p = 0, t = 0, star = -1, mark = 0;
        while (t < text.Length)
        {
            if (p < pattern.Length && (pattern[p] == '?' || pattern[p] == text[t]))
            {
                p++;
                t++;
            }
            else if (p < pattern.Length && pattern[p] == '*')
            {
                star = p++;
                mark = t;
            }
            else if (star >= 0)
            {
                p = star + 1;
                t = ++mark;
            }
            else
            {
                return false;
            }
        }
        while (p < pattern.Length && pattern[p] == '*')
        {
            p++;
        }
        return p == pattern.Length;
    }
}
