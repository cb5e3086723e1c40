namespace HttpUtil.Load;

/// <summary>"--name value" pairs from the command line.</summary>
internal sealed class Options(Dictionary<string, string> values)
{
    public static Options Parse(string[] args)
    {
        var values = new Dictionary<string, string>();
        for (var i = 0; i + 1 < args.Length; i += 2)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal)) throw new ArgumentException($"expected --name value, got '{args[i]}'");
            values[args[i][2..]] = args[i + 1];
        }
        return new Options(values);
    }

    public string Get(string name, string? fallback = null) =>
        values.TryGetValue(name, out var v) ? v : fallback ?? throw new ArgumentException($"--{name} is required");

    public int GetInt(string name, int fallback) => values.TryGetValue(name, out var v) ? int.Parse(v) : fallback;

    public double GetDouble(string name, double fallback) =>
        values.TryGetValue(name, out var v) ? double.Parse(v, System.Globalization.CultureInfo.InvariantCulture) : fallback;
}
