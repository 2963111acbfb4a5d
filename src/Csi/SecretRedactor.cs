using Google.Protobuf;
using Google.Protobuf.Reflection;
using Csi.V1;

namespace CsiCache.Csi;

/// <summary>
/// Makes a request safe to log. The CSI spec marks every sensitive field with the
/// <c>csi_secret</c> field option; we find them by that option, not by name, so a field added
/// in a later spec version is covered without a code change.
/// </summary>
public static partial class SecretRedactor
{
    /// <summary>
    /// The request as text fit for a log line: <c>csi_secret</c> fields cleared and any
    /// credentials written into a URI (<c>https://user:pass@host</c>, which we refuse, but a
    /// refused request is logged too) masked.
    /// </summary>
    public static string ToLogString(IMessage message) =>
        UserInfoPattern().Replace(Redact(message).ToString() ?? string.Empty, "://***@");

    [System.Text.RegularExpressions.GeneratedRegex(@"://[^/@\s""]+@")]
    private static partial System.Text.RegularExpressions.Regex UserInfoPattern();

    /// <summary>Returns a copy of <paramref name="message"/> with every <c>csi_secret</c> field cleared.</summary>
    public static IMessage Redact(IMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        if (!HasSecrets(message.Descriptor, depth: 0))
        {
            return message;
        }

        var copy = message.Descriptor.Parser.ParseFrom(message.ToByteString());
        RedactInPlace(copy);
        return copy;
    }

    private static void RedactInPlace(IMessage message)
    {
        foreach (var field in message.Descriptor.Fields.InDeclarationOrder())
        {
            if (IsSecret(field))
            {
                field.Accessor.Clear(message);
                continue;
            }

            if (field.FieldType != FieldType.Message || field.IsMap)
            {
                continue;
            }

            if (field.IsRepeated)
            {
                foreach (var item in (System.Collections.IList)field.Accessor.GetValue(message))
                {
                    RedactInPlace((IMessage)item);
                }
            }
            else if (field.Accessor.GetValue(message) is IMessage child)
            {
                RedactInPlace(child);
            }
        }
    }

    private static bool IsSecret(FieldDescriptor field) =>
        field.GetOptions()?.GetExtension(CsiExtensions.CsiSecret) == true;

    // CSI messages nest a few levels at most; the depth guard keeps recursive types finite.
    private static bool HasSecrets(MessageDescriptor descriptor, int depth)
    {
        if (depth > 8)
        {
            return false;
        }

        foreach (var field in descriptor.Fields.InDeclarationOrder())
        {
            if (IsSecret(field))
            {
                return true;
            }

            if (field.FieldType == FieldType.Message && !field.IsMap && HasSecrets(field.MessageType, depth + 1))
            {
                return true;
            }
        }

        return false;
    }
}
