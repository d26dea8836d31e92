<#
.SYNOPSIS
    Command-line client for the Integrator Agent (Etlworks AI Agent) API.

.DESCRIPTION
    Works in Windows PowerShell 5.1 and PowerShell 7 on Windows, macOS and Linux. The server URL
    and API key come from $env:ETLWORKS_URL and $env:ETLWORKS_API_KEY. Streaming commands read
    the Server-Sent Events line by line with System.Net.Http.HttpClient and print each token as
    it arrives.

    Commands:
      tools                          list the tools
      tool NAME [JSON]               execute a tool with a JSON object of arguments
      chat MSG                       one-shot chat, prints the answer
      chat-stream MSG                one-shot chat, prints tokens as they arrive
      session-create                 create a session and print only its id
      session-chat ID MSG            chat in a session
      session-chat-stream ID MSG     chat in a session, printing tokens as they arrive
      resume ID                      rejoin the session's running (or latest) turn and print it
                                     as it streams: the events after -After EVENT_ID (TURN:SEQ,
                                     or a bare event number), or the whole turn
      session-messages ID            print a session's conversation
      sessions                       list your sessions (-Limit, -Offset)
      session-delete ID              delete a session
      session-stop ID                stop the generation running in a session
      api-key set KEY | get | delete your own OpenAI key
      usage                          this month's usage, allowance and wallet

    -OnDisconnect continue (chat commands) lets the turn finish on the server when this client
    goes away (the default, cancel, stops it); a stream that breaks off then says how to rejoin
    it: resume ID -After EVENT_ID.

    On failure the script writes one line to stderr and exits with 1 (2 for a usage error).

.EXAMPLE
    $env:ETLWORKS_URL = "https://app.etlworks.com"
    $env:ETLWORKS_API_KEY = "YOUR_API_KEY"
    .\etlworks-agent.ps1 chat "How do I create a REST API connection?"
    .\etlworks-agent.ps1 tool search_knowledge_base '{"query": "schedule a flow"}'
    $session = .\etlworks-agent.ps1 session-create
    .\etlworks-agent.ps1 session-chat $session "Create a connection to api.example.com"
    .\etlworks-agent.ps1 session-chat-stream $session "A long answer" -OnDisconnect continue
    .\etlworks-agent.ps1 resume $session -After 0123456789abcdef0123456789abcdef:7
#>
[CmdletBinding(PositionalBinding = $false)]
param(
    [Parameter(Position = 0)]
    [string]$Command,

    [Parameter(Position = 1, ValueFromRemainingArguments = $true)]
    [string[]]$Arguments,

    # Print the server's JSON answer (streams: one JSON event per line).
    [switch]$Json,

    # Chat without tool calls.
    [switch]$NoTools,

    # Replace the default system prompt.
    [string]$SystemPrompt,

    # Page size and start for "sessions".
    [int]$Limit = 0,
    [int]$Offset = -1,

    # "resume": the id of the last event received (TURN:SEQ, or a bare event number).
    [string]$After,

    # Chat: what the server does with the turn when this client goes away: cancel (the
    # default) or continue.
    [string]$OnDisconnect,

    # Seconds to wait for an answer.
    [int]$TimeoutSec = 600
)

$ErrorActionPreference = 'Stop'
$script:Version = '1.1.0'
$script:Prog = 'etlworks-agent.ps1'
$script:ApiPath = '/rest/v1/ai-agent/api'
$script:KeyPath = '/rest/v1/ai-agent/api-key'
$script:LastText = ''
$script:StreamSession = ''

function Stop-WithError([string]$Message) {
    [Console]::Out.Flush()
    [Console]::Error.WriteLine("${script:Prog}: error: $Message")
    exit 1
}

function Stop-WithUsage([string]$Message) {
    [Console]::Error.WriteLine("${script:Prog}: $Message (see Get-Help $script:Prog)")
    exit 2
}

# A property of a parsed JSON object, or $null (never fails on a missing one).
function Get-Prop($Object, [string]$Name) {
    if ($null -eq $Object -or $Object -isnot [System.Management.Automation.PSCustomObject]) {
        return $null
    }
    $property = $Object.PSObject.Properties[$Name]
    if ($null -eq $property) { return $null }
    return $property.Value
}

function Get-InnerMessage([System.Exception]$Exception) {
    $e = $Exception
    while ($null -ne $e.InnerException) { $e = $e.InnerException }
    return $e.Message
}

function ConvertFrom-JsonText([string]$Text) {
    if ([string]::IsNullOrWhiteSpace($Text)) { return $null }
    try {
        if ($PSVersionTable.PSVersion.Major -ge 6) {
            # Keep a top-level array whole (an empty one too), as Windows PowerShell 5.1 does.
            $value = ConvertFrom-Json -InputObject $Text -NoEnumerate
        } else {
            $value = ConvertFrom-Json -InputObject $Text
        }
    } catch {
        return $null
    }
    return , $value
}

# The one-line description of a failed answer: "HTTP 401 invalid_api_key: ..." or "code: ...".
function Format-Failure([int]$Status, $Data, [string]$Text) {
    $message = $null
    $code = $null
    $err = Get-Prop $Data 'error'
    if ($err -is [System.Management.Automation.PSCustomObject]) {
        $message = Get-Prop $err 'message'
        $code = Get-Prop $err 'code'
    } elseif ($null -ne $err) {
        $message = [string]$err
    }
    $topCode = Get-Prop $Data 'code'
    if ($topCode) { $code = [string]$topCode }
    if (-not $message) {
        $first = ''
        if ($Text) { $first = ($Text.Trim() -split "`r?`n")[0] }
        if ($first.Length -gt 200) { $first = $first.Substring(0, 200) }
        if ($first) { $message = $first } else { $message = 'request failed' }
    }
    $line = ''
    if ($Status -ge 400) { $line = "HTTP $Status " }
    if ($code) { $line += "${code}: " }
    return $line + $message
}

function Test-Failed($Data) {
    $success = Get-Prop $Data 'success'
    return ($success -is [bool]) -and (-not $success)
}

function Initialize-Client {
    $url = $env:ETLWORKS_URL
    $key = $env:ETLWORKS_API_KEY
    if ([string]::IsNullOrWhiteSpace($url)) {
        Stop-WithError 'ETLWORKS_URL is not set (e.g. $env:ETLWORKS_URL = "https://app.etlworks.com")'
    }
    if ([string]::IsNullOrWhiteSpace($key)) { Stop-WithError 'ETLWORKS_API_KEY is not set' }
    $url = $url.Trim().TrimEnd('/')
    foreach ($suffix in @($script:ApiPath, $script:KeyPath, '/rest/v1/ai-agent')) {
        if ($url.EndsWith($suffix, [System.StringComparison]::OrdinalIgnoreCase)) {
            $url = $url.Substring(0, $url.Length - $suffix.Length).TrimEnd('/')
            break
        }
    }
    if ($url -notmatch '^https?://') {
        Stop-WithError "ETLWORKS_URL must start with http:// or https://: $url"
    }
    $script:BaseUrl = $url

    Add-Type -AssemblyName System.Net.Http
    if ($PSVersionTable.PSVersion.Major -lt 6) {
        # Windows PowerShell 5.1 may not offer TLS 1.2 by default.
        try {
            [Net.ServicePointManager]::SecurityProtocol = [Net.ServicePointManager]::SecurityProtocol -bor [Net.SecurityProtocolType]::Tls12
        } catch { }
    }
    $handler = New-Object System.Net.Http.HttpClientHandler
    $client = New-Object System.Net.Http.HttpClient($handler)
    $client.Timeout = [TimeSpan]::FromSeconds($TimeoutSec)
    $client.DefaultRequestHeaders.Authorization = New-Object System.Net.Http.Headers.AuthenticationHeaderValue('Bearer', $key.Trim())
    $null = $client.DefaultRequestHeaders.UserAgent.TryParseAdd("etlworks-agent-ps/$script:Version")
    $script:Client = $client
}

function New-Request([string]$Method, [string]$Url, [string]$Accept, [string]$Body) {
    $request = New-Object System.Net.Http.HttpRequestMessage((New-Object System.Net.Http.HttpMethod($Method)), $Url)
    $request.Headers.Accept.ParseAdd($Accept)
    if ($null -ne $Body -and $Body -ne '') {
        $request.Content = New-Object System.Net.Http.StringContent($Body, (New-Object System.Text.UTF8Encoding($false)), 'application/json')
    }
    return $request
}

function Send-Request($Request, [bool]$HeadersOnly) {
    try {
        if ($HeadersOnly) {
            return $script:Client.SendAsync($Request, [System.Net.Http.HttpCompletionOption]::ResponseHeadersRead).GetAwaiter().GetResult()
        }
        return $script:Client.SendAsync($Request).GetAwaiter().GetResult()
    } catch {
        $inner = Get-InnerMessage $_.Exception
        if ($_.Exception -is [System.Threading.Tasks.TaskCanceledException] -or $inner -match 'canceled|cancelled') {
            Stop-WithError "no answer from $($script:BaseUrl) within $TimeoutSec seconds"
        }
        Stop-WithError "cannot reach $($script:BaseUrl): $inner"
    }
}

# Sends a request and returns the parsed JSON answer; stops on HTTP errors and on
# application-level {"success": false} answers.
function Invoke-Api([string]$Method, [string]$Path, [string]$Body = $null, [string]$Base = $script:ApiPath) {
    $request = New-Request $Method ($script:BaseUrl + $Base + $Path) 'application/json' $Body
    $response = Send-Request $request $false
    try {
        $text = $response.Content.ReadAsStringAsync().GetAwaiter().GetResult()
        $status = [int]$response.StatusCode
    } finally {
        $response.Dispose()
    }
    $script:LastText = $text
    $data = ConvertFrom-JsonText $text
    if ($status -ge 400) { Stop-WithError (Format-Failure $status $data $text) }
    if ($null -eq $data) { Stop-WithError "the server's answer is not JSON (HTTP $status)" }
    if (Test-Failed $data) { Stop-WithError (Format-Failure $status $data $text) }
    return , $data
}

# Writes one event of a stream: tokens to stdout as they arrive, tool progress to stderr.
function Write-StreamEvent([string]$Data, [hashtable]$State) {
    if ($Data.Trim() -eq '[DONE]') { return }
    $evt = ConvertFrom-JsonText $Data
    if ($null -eq $evt) {
        if ($Data.Length -gt 200) { $Data = $Data.Substring(0, 200) }
        Stop-WithError "unreadable event in the stream: $Data"
    }
    if ($Json) { [Console]::Out.WriteLine($Data) }
    $State.Count += 1
    $type = [string](Get-Prop $evt 'type')
    switch ($type) {
        'token' {
            $content = [string](Get-Prop $evt 'content')
            if (-not $Json -and $content.Length -gt 0) {
                [Console]::Out.Write($content)
                [Console]::Out.Flush()
                $State.Wrote = $true
                $State.NewLine = $content.EndsWith("`n")
            }
        }
        'tool_start' {
            if (-not $Json) {
                if ($State.Wrote -and -not $State.NewLine) {
                    [Console]::Out.WriteLine()
                    $State.NewLine = $true
                }
                $message = Get-Prop $evt 'message'
                if (-not $message) { $message = Get-Prop $evt 'tool' }
                [Console]::Error.WriteLine("[$message]")
            }
        }
        'session' {
            if (-not $State.Session) { $State.Session = [string](Get-Prop $evt 'session_id') }
        }
        'end' {
            $State.Done = $true
        }
        'error' {
            $State.Done = $true
            if ($State.Wrote -and -not $State.NewLine) { [Console]::Out.WriteLine() }
            $line = ''
            $code = Get-Prop $evt 'code'
            if ($code) { $line = "${code}: " }
            $message = Get-Prop $evt 'message'
            if (-not $message) { $message = 'the agent failed' }
            $line += $message
            if ((Get-Prop $evt 'retryable') -eq $true) { $line += ' (retryable)' }
            Stop-WithError $line
        }
    }
}

# How to rejoin a stream that broke off: "; rejoin it with: ... resume ID -After EVENT_ID".
function Get-RejoinHint([hashtable]$State) {
    if (-not $State.Session -or -not $State.LastId) { return '' }
    return "; rejoin it with: $script:Prog resume $($State.Session) -After $($State.LastId)"
}

# POSTs a chat body to a streaming endpoint (GETs it without a body) and prints the events as
# they arrive. Each event's "id:" line (TURN:SEQ) is remembered, so that a stream that breaks
# off says how to rejoin it; $script:StreamSession names the session when the path does.
function Invoke-Stream([string]$Path, [string]$Body) {
    $method = 'POST'
    if ([string]::IsNullOrEmpty($Body)) { $method = 'GET' }
    $request = New-Request $method ($script:BaseUrl + $script:ApiPath + $Path) 'text/event-stream' $Body
    $response = Send-Request $request $true
    $status = [int]$response.StatusCode
    $mediaType = $null
    if ($null -ne $response.Content.Headers.ContentType) {
        $mediaType = $response.Content.Headers.ContentType.MediaType
    }
    if ($status -ge 400 -or $mediaType -ne 'text/event-stream') {
        # An error ({"error", "code"}) or an application-level refusal answered as JSON.
        $text = $response.Content.ReadAsStringAsync().GetAwaiter().GetResult()
        $response.Dispose()
        $data = ConvertFrom-JsonText $text
        if ($status -ge 400 -or (Test-Failed $data)) { Stop-WithError (Format-Failure $status $data $text) }
        Stop-WithError "expected an event stream, got $mediaType (HTTP $status)"
    }
    $state = @{ Done = $false; Wrote = $false; NewLine = $true; Count = 0; Session = $script:StreamSession; LastId = '' }
    $dataLines = New-Object System.Collections.Generic.List[string]
    $pendingId = ''
    $idsSeen = $false
    $stream = $response.Content.ReadAsStreamAsync().GetAwaiter().GetResult()
    $reader = New-Object System.IO.StreamReader($stream, (New-Object System.Text.UTF8Encoding($false)))
    try {
        # ReadLine returns each line as soon as its end arrives (CRLF, LF or CR).
        while ($true) {
            try {
                $line = $reader.ReadLine()
            } catch {
                # What was cut short is dropped: a rejoin after the last id sends it whole.
                if ($state.Wrote -and -not $state.NewLine) { [Console]::Out.WriteLine() }
                Stop-WithError "the event stream broke off: $(Get-InnerMessage $_.Exception) (retryable)$(Get-RejoinHint $state)"
            }
            if ($null -eq $line) { break }
            if ($line.Length -eq 0) {
                # A blank line ends an event.
                if ($dataLines.Count -gt 0) {
                    $data = [string]::Join("`n", $dataLines.ToArray())
                    $dataLines.Clear()
                    if ($pendingId) { $state.LastId = $pendingId }
                    $pendingId = ''
                    Write-StreamEvent $data $state
                    if ($state.Done) { break }
                }
                $pendingId = ''
                continue
            }
            if ($line.StartsWith(':', [System.StringComparison]::Ordinal)) { continue } # comment / keep-alive
            $colon = $line.IndexOf(':')
            if ($colon -lt 0) {
                $field = $line
                $value = ''
            } else {
                $field = $line.Substring(0, $colon)
                $value = $line.Substring($colon + 1)
                if ($value.StartsWith(' ', [System.StringComparison]::Ordinal)) { $value = $value.Substring(1) }
            }
            if ($field -eq 'data') {
                $dataLines.Add($value)
            } elseif ($field -eq 'id' -and $value.IndexOf([char]0) -lt 0) {
                $pendingId = $value
                $idsSeen = $true
            }
            # "event" and "retry" mean nothing to this client; other fields are ignored.
        }
        # The last event without its blank line is read if it has its id (or the stream has
        # none); else it may be cut short, and a rejoin after the last id sends it whole.
        if (-not $state.Done -and $dataLines.Count -gt 0 -and ($pendingId -or -not $idsSeen)) {
            if ($pendingId) { $state.LastId = $pendingId }
            Write-StreamEvent ([string]::Join("`n", $dataLines.ToArray())) $state
        }
    } finally {
        $reader.Dispose()
        $response.Dispose()
    }
    if ($state.Wrote -and -not $state.NewLine) { [Console]::Out.WriteLine() }
    # A rejoin after a turn's last event: a complete answer without any event.
    if (-not $state.Done -and -not ($method -eq 'GET' -and $state.Count -eq 0)) {
        Stop-WithError "the event stream ended before its end event (retryable)$(Get-RejoinHint $state)"
    }
}

function New-ChatBody([string]$Message) {
    $body = [ordered]@{ message = $Message; include_tools = (-not $NoTools.IsPresent) }
    if ($script:HasSystemPrompt) {
        $body['system_prompt'] = $SystemPrompt
    }
    if ($OnDisconnect) {
        $body['on_disconnect'] = $OnDisconnect
    }
    return (ConvertTo-Json -InputObject $body -Compress)
}

function Format-Id([string]$Id) {
    return [Uri]::EscapeDataString($Id.Trim())
}

function Write-Pretty($Data) {
    if ($Json) {
        Write-Output $script:LastText
    } else {
        Write-Output (ConvertTo-Json -InputObject $Data -Depth 20)
    }
}

# A chat answer carrying "error" is a failed turn: print what was answered, then fail.
function Write-ChatResult($Data) {
    if ($Json) {
        Write-Output $script:LastText
    } else {
        Write-Output ([string](Get-Prop $Data 'response'))
    }
    $err = Get-Prop $Data 'error'
    if ($err) { Stop-WithError (Format-Failure 200 $Data $script:LastText) }
}

function Assert-Count([int]$Count, [string]$Usage) {
    if ($script:Rest.Count -ne $Count) { Stop-WithUsage "usage: $script:Prog $Usage" }
}

# ---------------------------------------------------------------------------------------- main

$script:HasSystemPrompt = $PSBoundParameters.ContainsKey('SystemPrompt')
$script:HasAfter = $PSBoundParameters.ContainsKey('After')
$script:Rest = @()
if ($null -ne $Arguments) { $script:Rest = @($Arguments) }

if ([string]::IsNullOrWhiteSpace($Command)) {
    Stop-WithUsage 'usage: etlworks-agent.ps1 COMMAND [ARGS] (tools, tool, chat, chat-stream, session-create, session-chat, session-chat-stream, resume, session-messages, sessions, session-delete, session-stop, api-key, usage)'
}
$known = @('tools', 'tool', 'chat', 'chat-stream', 'session-create', 'session-chat', 'session-chat-stream',
    'resume', 'session-messages', 'sessions', 'session-delete', 'session-stop', 'api-key', 'usage')
if ($known -notcontains $Command) { Stop-WithUsage "unknown command '$Command'" }
if ($script:HasAfter -and $Command -ne 'resume') { Stop-WithUsage '-After is an option of resume' }
if ($PSBoundParameters.ContainsKey('OnDisconnect') -and @('cancel', 'continue') -cnotcontains $OnDisconnect) {
    Stop-WithUsage "-OnDisconnect must be cancel or continue, not '$OnDisconnect'"
}

switch ($Command) {
    'tools' { Assert-Count 0 'tools' }
    'tool' { if ($script:Rest.Count -lt 1 -or $script:Rest.Count -gt 2) { Stop-WithUsage "usage: $script:Prog tool NAME [JSON]" } }
    { $_ -in @('chat', 'chat-stream') } { Assert-Count 1 "$Command MSG" }
    { $_ -in @('session-create', 'usage', 'sessions') } { Assert-Count 0 $Command }
    { $_ -in @('session-chat', 'session-chat-stream') } { Assert-Count 2 "$Command ID MSG" }
    { $_ -in @('session-messages', 'session-delete', 'session-stop') } { Assert-Count 1 "$Command ID" }
    'resume' { Assert-Count 1 'resume ID [-After EVENT_ID]' }
    'api-key' {
        $action = $null
        if ($script:Rest.Count -ge 1) { $action = $script:Rest[0] }
        if ($action -eq 'set') { Assert-Count 2 'api-key set KEY' }
        elseif ($action -eq 'get' -or $action -eq 'delete') { Assert-Count 1 "api-key $action" }
        else { Stop-WithUsage "usage: $script:Prog api-key set KEY | get | delete" }
    }
}

$savedEncoding = $null
try {
    $savedEncoding = [Console]::OutputEncoding
    [Console]::OutputEncoding = New-Object System.Text.UTF8Encoding($false)
} catch {
    $savedEncoding = $null
}

try {
    Initialize-Client
    $rest = $script:Rest
    switch ($Command) {
        'tools' {
            $data = Invoke-Api 'GET' '/tools'
            if ($Json) { Write-Output $script:LastText; break }
            $tools = @($data.tools)
            $width = 4
            foreach ($tool in $tools) { if ($tool.name.Length -gt $width) { $width = $tool.name.Length } }
            foreach ($tool in $tools) {
                $kind = 'free'
                if ($tool.agentic) { $kind = 'billed' }
                $description = ([string]$tool.description -replace '\s+', ' ').Trim()
                Write-Output ('{0}  {1}  {2}' -f $tool.name.PadRight($width), $kind.PadRight(6), $description)
            }
            $count = Get-Prop $data 'count'
            if ($null -eq $count) { $count = $tools.Count }
            Write-Output "$count tools"
        }
        'tool' {
            $argsJson = '{}'
            if ($rest.Count -ge 2 -and -not [string]::IsNullOrWhiteSpace($rest[1])) { $argsJson = $rest[1] }
            $parsed = ConvertFrom-JsonText $argsJson
            if ($parsed -isnot [System.Management.Automation.PSCustomObject]) {
                Stop-WithError "the tool arguments must be a JSON object, e.g. '{""query"": ""REST connection""}'"
            }
            $data = Invoke-Api 'POST' ('/tools/' + (Format-Id $rest[0]) + '/execute') $argsJson
            if ($Json) { Write-Output $script:LastText } else { Write-Output ([string](Get-Prop $data 'result')) }
        }
        'chat' {
            Write-ChatResult (Invoke-Api 'POST' '/chat' (New-ChatBody $rest[0]))
        }
        'chat-stream' {
            Invoke-Stream '/chat/stream' (New-ChatBody $rest[0])
        }
        'session-create' {
            $data = Invoke-Api 'POST' '/sessions'
            $id = [string](Get-Prop $data 'session_id')
            if (-not $id) { Stop-WithError 'the server did not return a session id' }
            if ($Json) { Write-Output $script:LastText } else { Write-Output $id }
        }
        'session-chat' {
            Write-ChatResult (Invoke-Api 'POST' ('/sessions/' + (Format-Id $rest[0]) + '/chat') (New-ChatBody $rest[1]))
        }
        'session-chat-stream' {
            $script:StreamSession = $rest[0].Trim()
            Invoke-Stream ('/sessions/' + (Format-Id $rest[0]) + '/chat/stream') (New-ChatBody $rest[1])
        }
        'resume' {
            $script:StreamSession = $rest[0].Trim()
            $path = '/sessions/' + (Format-Id $rest[0]) + '/stream'
            if ($script:HasAfter) { $path += '?after=' + [Uri]::EscapeDataString($After) }
            Invoke-Stream $path $null
        }
        'session-messages' {
            $data = Invoke-Api 'GET' ('/sessions/' + (Format-Id $rest[0]) + '/messages')
            if ($Json) { Write-Output $script:LastText; break }
            $first = $true
            foreach ($message in @($data)) {
                if ($null -eq $message) { continue }
                if (-not $first) { Write-Output '' }
                $first = $false
                $marker = ''
                if ((Get-Prop $message 'interrupted') -eq $true) { $marker = ' (interrupted)' }
                Write-Output ('[' + $message.role + ']' + $marker)
                Write-Output ([string]$message.content)
            }
        }
        'sessions' {
            $query = @()
            if ($Limit -gt 0) { $query += "limit=$Limit" }
            if ($Offset -ge 0) { $query += "offset=$Offset" }
            $path = '/sessions'
            if ($query.Count -gt 0) { $path += '?' + ($query -join '&') }
            $data = Invoke-Api 'GET' $path
            if ($Json) { Write-Output $script:LastText; break }
            foreach ($s in @($data.sessions)) {
                if ($null -eq $s) { continue }
                $title = ([string](Get-Prop $s 'title') -replace '\s+', ' ').Trim()
                if ($title.Length -gt 60) { $title = $title.Substring(0, 57) + '...' }
                Write-Output (('{0}  {1}  {2} msgs  {3}' -f $s.session_id, $s.updated_at, $s.message_count, $title).TrimEnd())
            }
        }
        'session-delete' {
            Write-Pretty (Invoke-Api 'DELETE' ('/sessions/' + (Format-Id $rest[0])))
        }
        'session-stop' {
            Write-Pretty (Invoke-Api 'POST' ('/sessions/' + (Format-Id $rest[0]) + '/stop'))
        }
        'api-key' {
            switch ($rest[0]) {
                'set' { Write-Pretty (Invoke-Api 'POST' '' (ConvertTo-Json -InputObject @{ api_key = $rest[1] } -Compress) $script:KeyPath) }
                'get' { Write-Pretty (Invoke-Api 'GET' '' $null $script:KeyPath) }
                'delete' { Write-Pretty (Invoke-Api 'POST' '/delete' $null $script:KeyPath) }
            }
        }
        'usage' {
            Write-Pretty (Invoke-Api 'GET' '/usage')
        }
    }
} finally {
    if ($null -ne $savedEncoding) {
        try { [Console]::OutputEncoding = $savedEncoding } catch { }
    }
}
exit 0
