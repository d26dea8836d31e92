#!/usr/bin/env python3
"""Generate realistic knowledge-base articles for the search benchmark.

Writes COUNT Markdown files (default 10,000) into OUT_DIR. Each article has a `# ` title
(the title `kb import` uses), 2-5 `## ` sections of prose, sometimes a bullet list, a
code/config block or a troubleshooting table, and is 200-600 words long. The text is about
data integration (connectors, flows, schedules, pagination, auth errors, mappings...) and
draws from a vocabulary of a few thousand distinct words with a Zipf-like skew, so that the
index has realistic posting-list lengths: common domain words ("connection", "flow",
"table") appear in most articles, rare ones (field names, error codes, system names) in few.

Deterministic: the same --seed always produces byte-identical files.

    python3 bench/gen_articles.py OUT_DIR [--count 10000] [--seed 20240601]
"""

import argparse
import os
import random
import sys

# --- vocabulary ---------------------------------------------------------------------------

SYSTEMS = """PostgreSQL MySQL MariaDB SQLite Oracle SQLServer Snowflake Redshift BigQuery Databricks
ClickHouse MongoDB Cassandra DynamoDB Elasticsearch OpenSearch Kafka RabbitMQ Pulsar Kinesis
S3 AzureBlob GCS SFTP FTP Salesforce HubSpot Zendesk Shopify Stripe NetSuite QuickBooks Marketo
Jira GitHub GitLab Bitbucket Slack Twilio SendGrid Mailchimp Workday SAP Dynamics ServiceNow
GoogleSheets Excel Airtable Notion Intercom Freshdesk Pipedrive Magento WooCommerce BambooHR
Greenhouse Okta Auth0 Xero Zuora Chargebee Braintree PayPal Adyen Segment Mixpanel Amplitude
GoogleAnalytics Klaviyo Braze Iterable Asana Trello Monday ClickUp Confluence Dropbox Box
OneDrive SharePoint Teradata Vertica Greenplum CockroachDB TimescaleDB InfluxDB Redis Neo4j
Couchbase Firebird DB2 Informix Sybase Hive Presto Trino Athena Synapse Fivetran Airbyte dbt
Airflow Dagster Prefect Looker Tableau PowerBI Metabase Superset Sisense Qlik Domo""".split()

NOUNS = """connection flow schedule pipeline source destination table column schema field record
row batch cursor page offset token header endpoint payload webhook mapping transformation
filter join lookup aggregate partition index key constraint trigger view procedure function
query statement transaction commit rollback lock deadlock timeout retry backoff limit quota
throttle rate credential password secret certificate keystore truststore proxy firewall port
host hostname address domain tenant user role permission group account workspace project
environment variable parameter argument option setting configuration template placeholder
format file folder directory path archive extension encoding delimiter separator quote escape
newline header footer sheet workbook document attachment message queue topic stream event
subscription consumer producer offset checkpoint watermark snapshot replica primary standby
failover backup restore migration upgrade version release changelog license agent session
chat conversation answer question ticket priority status requester comment article knowledge
search result snippet score ranking relevance synonym stemming typo highlight catalog
connector driver adapter plugin extension module library client server gateway balancer
cluster node worker thread process memory disk cpu latency throughput bandwidth payloadsize
log trace metric alert dashboard report notification email summary history audit run step
stage task job execution attempt failure error warning exception stacktrace message code
response request method verb body status redirect cookie origin scope grant client_id
refresh expiry signature hash checksum digest salt nonce cipher encryption decryption
compression chunk buffer window interval cron frequency hour minute second day week month
timezone calendar deadline duration timestamp date datetime epoch precision scale decimal
integer string boolean array object null type cast conversion nesting flattening dataset
warehouse lake lakehouse mart cube dimension measure fact slowly changing history upsert
merge insert update delete truncate append overwrite deduplication duplicate identity
sequence surrogate natural composite foreign primary unique nullable default""".split()

VERBS = """create configure connect extract load transform map filter join schedule run
trigger retry pause resume cancel monitor debug troubleshoot fix resolve rotate revoke renew
import export sync replicate migrate backup restore upgrade install deploy scale partition
compress encrypt decrypt validate parse serialize flatten normalize denormalize aggregate
dedupe merge upsert append overwrite truncate paginate authenticate authorize throttle
stream batch buffer cache index search rank highlight notify alert log trace audit
test preview inspect compare diff rename copy move archive purge expire refresh reload
enable disable grant restrict share invite assign escalate close reopen""".split()

def past(v):
    irregular = {"run": "run", "map": "mapped", "log": "logged", "debug": "debugged",
                 "stop": "stopped", "batch": "batched", "cache": "cached", "index": "indexed",
                 "search": "searched", "grant": "granted", "share": "shared",
                 "backup": "backed up", "dedupe": "deduped"}
    if v in irregular:
        return irregular[v]
    return v + "d" if v.endswith("e") else v + "ed"


GERUNDS = {
    v: (v[:-1] + "ing" if v.endswith("e") and not v.endswith("ee") else
        v + v[-1] + "ing" if v in {"run", "map", "debug", "log", "stop", "plan"} else
        v + "ing")
    for v in VERBS
}

ADJECTIVES = """incremental full nested flat large small slow fast secure encrypted compressed
paginated cursor-based offset-based token-based scheduled manual automatic hourly daily weekly
monthly failed successful partial duplicate missing invalid expired revoked unauthorized
forbidden throttled rate-limited idempotent transactional atomic concurrent parallel serial
sequential distributed shared dedicated read-only writable temporary persistent stale fresh
historical realtime near-realtime streaming batched chunked multi-tenant single-tenant
self-hosted managed on-premise cloud hybrid legacy modern deprecated experimental stable
recommended optional required mandatory custom default global local remote upstream downstream
primary secondary external internal public private sensitive masked hashed anonymized""".split()

ADVERBS = """quickly safely reliably automatically manually carefully usually typically
occasionally rarely frequently periodically incrementally gradually immediately eventually
explicitly implicitly correctly silently""".split()

GENERAL = """about above after again against all almost also although always among another any
anyone anything around because before behind below between both but by came can certain
change clear close common complete consider continue could current different during each
early easy either else enough entire even every example except few first follow following
form full give given good great group hand happen help here high however important include
including instead keep kind know large last later least less let level like line little long
look lot low main make many may mean might more most much must name near need never new
next note nothing now number often old once only open order other otherwise own part past
people place point possible present probably problem provide put quite rather real reason
right same see seem several short should show side similar simple since single so some
something sometimes soon start still such sure system take than that then there therefore
these thing think though through time together too toward try turn under until up upon use
usual very want way well what whether which while whole why within without work would yet
customer company team business operations finance marketing sales support engineering
analyst administrator developer operator owner manager reviewer auditor partner vendor
invoice order product price discount refund payment subscription plan shipment inventory
warehouse store region country currency revenue cost margin forecast budget contract lead
opportunity campaign contact employee candidate applicant payroll expense ledger journal
balance asset liability quarter fiscal year report goal target milestone roadmap incident
outage maintenance window change request approval policy compliance regulation privacy gdpr
hipaa soc2 retention deletion consent breach risk review checklist runbook playbook guide
tutorial overview reference faq glossary appendix introduction background prerequisites
requirements limitations caveats tips best practices recommendations summary conclusion
step first second third finally next then afterwards meanwhile otherwise however instead
notice observe verify confirm ensure check make sure remember avoid prefer choose decide
""".split()

ENTITIES = """customer order invoice product account contact lead user employee payment
shipment ticket campaign subscription transaction refund event session device vendor
item supplier warehouse store coupon cart review survey deal quote contract asset""".split()
ATTRIBUTES = """Id Name Email Status Type Total Amount Currency Date CreatedAt UpdatedAt Code
Region Owner Source Count Score Phone Address Notes Tags Channel Country City Zip Quantity
Price Discount Tax Balance Stage Category Label Version""".split()
FIELD_NAMES = [e + a for e in ENTITIES for a in ATTRIBUTES]  # customerId, orderTotal, ...

HTTP_ERRORS = ["400 Bad Request", "401 Unauthorized", "403 Forbidden", "404 Not Found",
               "408 Request Timeout", "409 Conflict", "413 Payload Too Large",
               "422 Unprocessable Entity", "429 Too Many Requests", "500 Internal Server Error",
               "502 Bad Gateway", "503 Service Unavailable", "504 Gateway Timeout"]

# A deterministic pool of product error codes (ETL1001 ... ), each a rare word.
ERROR_CODES = ["ETL%04d" % n for n in range(1001, 1401)]

# --- text generation ---------------------------------------------------------------------


class Writer:
    def __init__(self, rng):
        self.rng = rng
        # One Zipf-ish weighted pool over the whole vocabulary: domain words first (common),
        # then general words, then the long tail of field names and codes (rare).
        vocab = []
        for group in (NOUNS, VERBS, SYSTEMS, ADJECTIVES, GENERAL, ADVERBS, FIELD_NAMES,
                      ERROR_CODES):
            for w in group:
                if w not in vocab:
                    vocab.append(w)
        self.vocab = vocab
        self.weights = [1.0 / (rank + 10) ** 0.9 for rank in range(len(vocab))]
        self.cum = []
        total = 0.0
        for w in self.weights:
            total += w
            self.cum.append(total)

    def word(self):
        return self.rng.choices(self.vocab, cum_weights=self.cum, k=1)[0]

    def pick(self, seq):
        return self.rng.choice(seq)

    def sentence(self, topic):
        """One sentence: mostly templated prose about the topic, padded with skewed words."""
        r = self.rng
        s, s2 = topic["system"], topic["system2"]
        n, n2 = self.pick(NOUNS), self.pick(NOUNS)
        v, a = self.pick(VERBS), self.pick(ADJECTIVES)
        f = self.pick(FIELD_NAMES)
        templates = [
            f"To {v} the {n} from {s}, open the {topic['noun']} settings and set the {n2}.",
            f"The {a} {n} is used when you {v} {s} data into {s2}.",
            f"If the {n} fails with {self.pick(HTTP_ERRORS)}, check the {n2} and the credentials of the {topic['noun']}.",
            f"Use a {a} {topic['noun']} to {v} only the rows whose {f} changed since the last run.",
            f"Map the {f} column of {s} to the {self.pick(FIELD_NAMES)} column in {s2}.",
            f"Schedule the flow to run every {r.choice(['hour', '15 minutes', 'day at 02:00', 'week', '5 minutes'])} and {v} the {n} after each run.",
            f"When {s} returns more than {r.choice([100, 500, 1000, 5000, 10000])} records, the connector will {topic['verb']} them page by page.",
            f"Error {self.pick(ERROR_CODES)} means the {n} could not be {past(v)} because the {n2} is {a}.",
            f"Most teams {self.pick(ADVERBS)} {v} the {n} before they {topic['verb']} it into {s2}.",
            f"The {topic['noun']} keeps a {n} so that a {a} run can resume where it stopped.",
            f"Set the {n} header to the API token of the {s} account and {v} the {n2}.",
            f"{s} limits requests per {r.choice(['second', 'minute', 'hour'])}; use a {a} {n} with retries and backoff.",
        ]
        text = r.choice(templates)
        # Pad some sentences with free words from the skewed vocabulary.
        if r.random() < 0.6:
            extra = " ".join(self.word() for _ in range(r.randint(4, 14)))
            text = text[:-1] + ", " + extra + "."
        return text

    def paragraph(self, topic, sentences):
        return " ".join(self.sentence(topic) for _ in range(sentences))


TITLE_PATTERNS = [
    "How to {verb} {system} {noun}s into {system2}",
    "{Gerund} {adj} {noun}s from {system}",
    "Troubleshooting {error} when {gerund} {system}",
    "{system} to {system2}: {gerund} {noun}s with a flow",
    "Fix {code} in the {system} {noun}",
    "Schedule a {system} {noun} every {period}",
    "Best practices for {gerund} {adj} {noun}s",
    "Mapping {field} from {system} to {system2}",
    "{Gerund} a REST API {noun} for {system}",
    "Why does the {system} {noun} return {error}?",
    "Paginating {system} results with a {adj} {noun}",
    "Rotating the API key of a {system} {noun}",
]

PERIODS = ["hour", "day", "15 minutes", "week", "night", "5 minutes", "month"]

SECTION_HEADINGS = ["Overview", "Before you start", "Steps", "Configuration", "Example",
                    "Troubleshooting", "Common errors", "Performance", "Security",
                    "Scheduling", "Field mapping", "Pagination", "Limits", "See also",
                    "How it works", "Verifying the result", "Rolling back"]


def make_article(index, writer):
    rng = writer.rng
    system, system2 = rng.sample(SYSTEMS, 2)
    noun, verb, adj = rng.choice(NOUNS), rng.choice(VERBS), rng.choice(ADJECTIVES)
    topic = {"system": system, "system2": system2, "noun": noun, "verb": verb}
    title = rng.choice(TITLE_PATTERNS).format(
        verb=verb, Gerund=GERUNDS[verb].capitalize(), gerund=GERUNDS[verb], system=system,
        system2=system2, noun=noun, adj=adj, error=rng.choice(HTTP_ERRORS),
        code=rng.choice(ERROR_CODES), period=rng.choice(PERIODS),
        field=rng.choice(FIELD_NAMES),
    )
    target_words = rng.randint(200, 600)
    lines = [f"# {title}", ""]
    words = 0
    headings = rng.sample(SECTION_HEADINGS, 5)
    section = 0
    while words < target_words:
        if section < len(headings) and (section == 0 or rng.random() < 0.5):
            lines += [f"## {headings[section]}", ""]
            section += 1
        kind = rng.random()
        if kind < 0.12:
            items = [f"- {writer.sentence(topic)}" for _ in range(rng.randint(2, 5))]
            block = "\n".join(items)
        elif kind < 0.20:
            block = "\n".join([
                "```",
                f"connection {system.lower()}_{noun} type={rng.choice(['http', 'postgres', 'sqlite', 'file'])}",
                f"  url=https://api.example.com/v{rng.randint(1, 3)}/{rng.choice(ENTITIES)}s",
                f"  page_size={rng.choice([100, 250, 500, 1000])} retries={rng.randint(1, 5)}",
                f"flow {verb}_{rng.choice(ENTITIES)}s source={system.lower()} target={system2.lower()}",
                f"schedule flow {verb}_{rng.choice(ENTITIES)}s every={rng.choice(['1h', '15m', '1d'])}",
                "```",
            ])
        elif kind < 0.26:
            rows = ["| Error | Cause | Fix |", "|---|---|---|"]
            for _ in range(rng.randint(2, 4)):
                rows.append(f"| {rng.choice(HTTP_ERRORS)} | {rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} "
                            f"| {rng.choice(VERBS)} the {rng.choice(NOUNS)} |")
            block = "\n".join(rows)
        else:
            block = writer.paragraph(topic, rng.randint(2, 5))
        block_words = len(block.split())
        if words >= 200 and words + block_words > 600:
            break
        lines += [block, ""]
        words += block_words
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=20240601)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    writer = Writer(rng)
    os.makedirs(args.out_dir, exist_ok=True)
    total_words = 0
    for i in range(args.count):
        text = make_article(i, writer)
        total_words += len(text.split())
        # Spread over sub-folders like a real export; names sort stably.
        sub = os.path.join(args.out_dir, f"part-{i // 1000:02d}")
        os.makedirs(sub, exist_ok=True)
        with open(os.path.join(sub, f"article-{i:05d}.md"), "w", encoding="utf-8") as f:
            f.write(text + "\n")
    print(f"wrote {args.count} articles ({total_words} words, vocabulary {len(writer.vocab)} "
          f"words) to {args.out_dir}", file=sys.stderr)


if __name__ == "__main__":
    main()
