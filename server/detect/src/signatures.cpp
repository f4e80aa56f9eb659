// The signature set. Patterns are written against Normalize()d text (decoded, lower case); `SP`
// stands for SQL whitespace including inline comments.
#include <hs/hs.h>

#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <string>

#include "boing/detect/content.h"

namespace boing::detect {
namespace {

#define SP R"((?:\s|/\*[^*]{0,64}\*/))"

struct Signature {
  AttackClass cls;
  const char* name;
  const char* regex;
};

const Signature
    kSignatures[] =
        {
            // --- SQL injection ---
            {AttackClass::kSqli, "sqli:union_select",
             R"(\bunion(?:)" SP R"(|\()+(?:(?:all|distinct)(?:)" SP R"(|\()+)?select\b)"},
            {AttackClass::kSqli, "sqli:select_list",
             R"(\bselect(?:)" SP
             R"()+(?:\*|null\b|count\s*\(|top\s+\d|@@|[a-z_][a-z0-9_]*\s*\(|[a-z_][a-z0-9_.]*\s*,\s*[a-z_0-9])[^;]{0,200}\bfrom\b)"},
            {AttackClass::kSqli, "sqli:time_or_error_function",
             R"(\b(?:sleep|benchmark|pg_sleep|extractvalue|updatexml|load_file|make_set|regexp_substring|randomblob|group_concat|concat_ws|json_keys|exp|gtid_subset|polygon|multipoint|name_const)\s*\()"},
            {AttackClass::kSqli, "sqli:oracle_package",
             R"(\b(?:utl_inaddr|utl_http|dbms_pipe|dbms_lock|dbms_xmlgen|ctxsys\.drithsx|sys\.dbms_\w+)\b)"},
            {AttackClass::kSqli, "sqli:function_in_expression",
             R"((?:['")=,|+]|\b(?:and|or|select|where|union|then|else)\b)\s*\(*\s*(?:char|chr|concat|substring|substr|ascii|ord|mid|hex|unhex|cast|convert|version|database|user|schema|current_user|system_user|if|ifnull|iif|nullif|coalesce|count|length|len|rand|md5|floor|instr|left|right|case)\()"},
            {AttackClass::kSqli, "sqli:waitfor", R"(\bwaitfor\s+(?:delay|time)\s+['"])"},
            {AttackClass::kSqli, "sqli:quote_boolean",
             R"(['"`]\s*\)*(?:)" SP
             R"()*(?:\bor\b|\band\b|\bxor\b|\|\||&&|\bdiv\b|\blike\b|\brlike\b|\bregexp\b)(?:)" SP
             R"()*[\s(]*(?:['"`]?[\w@.*+/-]{0,30}['"`]?\s*(?:=|<|>|!=|--|#|/\*|;)|(?:true|false|null|exists|select|sleep|benchmark|char|if|case|ascii|substring|ord)\b|\d+\s*(?:$|--|#|/\*|;|\))))"},
            {AttackClass::kSqli, "sqli:quote_comment",
             R"(['"`]\s*\)*\s*(?:--(?:\s|$|[^a-z0-9])|#(?:\s|$)|/\*|;\s*(?:--|#|$)|\x00))"},
            {AttackClass::kSqli, "sqli:conditional_function",
             R"(\b(?:if|iif|elt|nullif)\s*\(\s*\d+\s*(?:=|<>|!=|<|>)\s*\d+)"},
            {AttackClass::kSqli, "sqli:stacked_conditional", R"(;\s*(?:if|iif)\s*\()"},
            {AttackClass::kSqli, "sqli:stacked_query",
             R"(;\s*(?:drop\s+(?:table|database|user)|insert\s+into|delete\s+from|update\s+\S+\s+set\b|shutdown\b|exec(?:ute)?\s*(?:\(|xp_|sp_|master\b)|declare\s+@|create\s+(?:table|user|database|function|procedure)|alter\s+(?:table|user|database)|truncate\s+table|select\s|waitfor\s|set\s+@))"},
            {AttackClass::kSqli, "sqli:catalog",
             R"(\b(?:information_schema|sysobjects|syscolumns|sysusers|pg_catalog|pg_shadow|pg_user|sqlite_master|mysql\.user|all_tables|user_tables|dba_users|msysaccessobjects|msysobjects|xp_cmdshell|sp_executesql|sp_oacreate|sp_password)\b)"},
            {AttackClass::kSqli, "sqli:system_variable",
             R"(@@(?:version|datadir|hostname|servername|basedir|tmpdir|identity|spid))"},
            {AttackClass::kSqli, "sqli:order_by_number",
             R"(\b(?:order|group)\s+by\s+\d+\s*(?:--|#|,|$|\)|;|/\*))"},
            {AttackClass::kSqli, "sqli:tautology",
             R"(\b(?:or|and|xor|having|where|when)(?:)" SP
             R"()+['"(]*\s*(?:\d+|'[^']{0,32}'|"[^"]{0,32}"|[a-z_][a-z0-9_]{0,30})\s*['")]*\s*(?:=|<>|!=|<=|>=|<|>|\blike\b|\bis\b|\bin\s*\(|\bbetween\b)\s*['"(]*\s*(?:\d|'|"|null\b|[a-z_]+\s*\(|select\b))"},
            {AttackClass::kSqli, "sqli:char_concat",
             R"(\bch(?:a)?r\s*\(\s*\d+\s*\)\s*(?:\+|\|\||,))"},
            {AttackClass::kSqli, "sqli:case_when", R"(\bcase\s+when\b.{1,120}\bthen\b)"},
            {AttackClass::kSqli, "sqli:file_access",
             R"(\binto\s+(?:out|dump)file\b|\bprocedure\s+analyse\b)"},
            {AttackClass::kSqli, "sqli:exec_procedure", R"(\bexec(?:ute)?\s+(?:master\.|xp_|sp_))"},
            // --- cross-site scripting ---
            {AttackClass::kXss, "xss:script_tag", R"(<\s*/?\s*script\b)"},
            {AttackClass::kXss, "xss:script_url",
             R"(\b(?:java|vb|live|ecma|moz)\s*script\s*:|\bmocha\s*:)"},
            {AttackClass::kXss, "xss:event_handler",
             R"((?:^|[\s"'/`;])on(?:abort|activate|after\w*|animation\w*|before\w*|begin|blur|bounce|canplay\w*|change|click|close|contextmenu|copy|cut|dblclick|drag\w*|drop|durationchange|end|ended|error|finish|focus\w*|hashchange|input|invalid|key\w+|load\w*|message|mouse\w+|move\w*|page\w+|paste|pause|play\w*|pointer\w+|popstate|progress|propertychange|readystatechange|repeat|reset|resize|scroll|search|seek\w*|select\w*|show|start|submit|timeupdate|toggle|touch\w+|transition\w*|unload|volumechange|wheel)\s*=)"},
            {AttackClass::kXss, "xss:dangerous_tag",
             R"(<\s*\??\s*(?:iframe|frame|frameset|object|embed|applet|meta|base|link|svg|math|xml|xss|style|isindex|bgsound|layer|ilayer|import|template|keygen)\b)"},
            {AttackClass::kXss, "xss:tag_with_source", R"(<\s*(?:img|image|body|input|video|audio|source|a|div|table|td|form|button|details|iframe|embed|object)\b[^>]{0,200}\b(?:src|href|background|action|formaction|dynsrc|lowsrc|data|srcdoc)\s*=\s*['"]?\s*(?:data\s*:|&#|\\u|[a-z]+\s*script))"},
            {AttackClass::kXss, "xss:css_expression",
             R"(\bexpression\s*\(|-moz-binding\s*:|\bbehaviou?r\s*:\s*url|@import\b|\bdataformatas\s*=)"},
            {AttackClass::kXss, "xss:data_html",
             R"(\bdata\s*:\s*(?:text/html|image/svg\+xml|application/x?html))"},
            {AttackClass::kXss, "xss:js_sink",
             R"(document\s*\.\s*(?:cookie|write|writeln|location|domain)\b|\bwindow\s*\.\s*location\b|\b(?:alert|prompt|confirm|eval)\s*(?:`|\(\s*(?:\d|['"`/]|document\b|window\b|self\b|top\b|this\b|atob\b|string\b))|\bstring\s*\.\s*fromcharcode\s*\(|\batob\s*\(|\.innerhtml\s*=)"},
            {AttackClass::kXss, "xss:srcdoc", R"(\bsrcdoc\s*=)"},
            // --- path traversal ---
            {AttackClass::kPathTraversal, "traversal:dot_dot_slash",
             R"(\.\.(?:;)?(?:[/\\]|0x2f|0x5c))"},
            {AttackClass::kPathTraversal, "traversal:slash_dot_dot", R"([/\\]\.\.(?:$|[/\\;?]))"},
            {AttackClass::kPathTraversal, "traversal:encoded_dots",
             R"((?:0x2e){2}(?:0x2f|0x5c|[/\\]))"},
            {AttackClass::kPathTraversal, "traversal:dot_segments", R"((?:/+\.){3,}/)"},
            {AttackClass::kPathTraversal, "traversal:dot_run", R"((?:^|[/\\])\.{4,})"},
            {AttackClass::kPathTraversal, "traversal:system_file",
             R"(\b(?:boot\.ini|win\.ini|system\.ini|global\.asa|web-inf[/\\]?web\.xml|etc[/\\]?(?:passwd|shadow)|inetpub[/\\]?wwwroot)\b)"},
            {AttackClass::kPathTraversal, "traversal:sensitive_file",
             R"((?:^|[/\\=:])(?:etc[/\\](?:passwd|shadow|group|hosts|issue|sudoers|crontab)\b|proc[/\\]self[/\\]|boot\.ini\b|win\.ini\b|system\.ini\b|windows[/\\]system32\b|web-inf[/\\]web\.xml|\.htaccess\b|\.htpasswd\b|\.git[/\\]config\b|\.ssh[/\\]id_[a-z0-9]+\b|\.bash_history\b))"},
            {AttackClass::kPathTraversal, "traversal:file_scheme", R"(\bfile:/)"},
            {AttackClass::kPathTraversal, "traversal:null_byte", R"(\x00)"},
            // --- command injection ---
            {AttackClass::kCmdi, "cmdi:separator_command",
             R"((?:[;&|`\n]|\$\(|\|\|)\s*(?:/(?:usr/)?s?bin/)?(?:cat|ls|id|whoami|uname|wget|curl|nc|ncat|netcat|bash|sh|zsh|ksh|ping|sleep|rm|chmod|chown|python[23]?|perl|ruby|php|nslookup|dig|ifconfig|ipconfig|ps|kill|nmap|telnet|powershell|cmd|systeminfo|hostname|passwd|useradd|crontab|base64|echo|dir|type|net\s+user|netstat|printenv|grep|uptime|lsof|tftp|ssh|nohup|xterm)(?:\s|$|[;&|`<>)]))"},
            {AttackClass::kCmdi, "cmdi:command_substitution",
             R"(\$\(\s*[a-z/][^)]{0,60}\)|`\s*(?:cat|ls|id|whoami|uname|sleep|ping|wget|curl|nc|echo|true|false|pwd|netstat)\b)"},
            // A shell command run from script code (PHP's system('id'), exec("ls")...).
            {AttackClass::kCmdi, "cmdi:exec_call",
             R"(\b(?:system|exec|shell_exec|passthru|popen|proc_open)\s*\(\s*['"`]\s*[a-z/])"},
            {AttackClass::kCmdi, "cmdi:binary_path",
             R"((?:^|[^a-z0-9_.])/(?:usr/(?:local/)?)?s?bin/(?:sh|bash|zsh|ksh|dash|cat|id|ls|sleep|ping|nc|ncat|wget|curl|python[23]?|perl|uname|whoami|echo|rm|chmod)\b)"},
            {AttackClass::kCmdi, "cmdi:shell_launcher",
             R"(\bcmd(?:\.exe)?\s*/[ck]\b|\bpowershell(?:\.exe)?\s+-|\b(?:sh|bash)\s+-c\s|\$\{?ifs\}?)"},
            {AttackClass::kCmdi, "cmdi:command_then_separator",
             R"(^\s*(?:id|whoami|uname(?:\s+-a)?|ls(?:\s+-[a-z]+)?|pwd|ifconfig|ipconfig|netstat(?:\s+-[a-z]+)?)\s*[;|&`])"},
            {AttackClass::kCmdi, "cmdi:ping_probe",
             R"(\bping\s+(?:-[a-z]+\s+\d+\s+)*\d{1,3}(?:\.\d{1,3}){3}\b)"},
            {AttackClass::kCmdi, "cmdi:windows_dir", R"((?:^|[\s;&|])dir\s+[a-z]:)"},
            {AttackClass::kCmdi, "cmdi:redirect", R"([>|]\s*/(?:tmp|dev/tcp|etc|var/www)/)"},
            // --- LDAP injection ---
            {AttackClass::kLdapi, "ldapi:filter_break",
             R"(\*?\)\s*\(\s*[|&!]?\s*\(?\s*[a-z][a-z0-9-]*\s*[~<>]?=)"},
            {AttackClass::kLdapi, "ldapi:or_and_filter",
             R"(\(\s*[|&!]\s*\(\s*[a-z][a-z0-9-]*\s*[~<>]?=)"},
            {AttackClass::kLdapi, "ldapi:wildcard_class",
             R"(\b(?:objectclass|objectcategory)\s*=\s*\*)"},
            // --- NoSQL injection ---
            {AttackClass::kNosqli, "nosqli:operator_param",
             R"(\[\s*\$(?:ne|eq|gt|gte|lt|lte|in|nin|regex|where|exists|not|or|and|nor|expr|elemmatch|type|mod|all|size|function)\s*\])"},
            {AttackClass::kNosqli, "nosqli:operator_key",
             R"(['"]\$(?:ne|gt|gte|lt|lte|in|nin|regex|where|exists|nor|expr|elemmatch|function|accumulator|or)['"]\s*:)"},
            {AttackClass::kNosqli, "nosqli:where_js",
             R"(\$where\b|\bthis\.[a-z_][a-z0-9_]*\s*(?:==|!=|\.match\s*\()|;\s*return\s+(?:true|1)\b|\bdb\.[a-z_]+\.(?:find|insert|drop|remove|update)\w*\s*\()"},
            {AttackClass::kNosqli, "nosqli:js_tautology",
             R"(['"]\s*\|\|\s*['"]?[a-z0-9]+['"]?\s*==\s*['"]?[a-z0-9]+)"},
};

#undef SP

}  // namespace

const char* AttackClassId(AttackClass c) {
  switch (c) {
    case AttackClass::kSqli:
      return "sqli";
    case AttackClass::kXss:
      return "xss";
    case AttackClass::kPathTraversal:
      return "path_traversal";
    case AttackClass::kCmdi:
      return "cmdi";
    case AttackClass::kLdapi:
      return "ldapi";
    case AttackClass::kNosqli:
      return "nosqli";
  }
  return "unknown";
}

struct SignatureSet::Impl {
  hs_database_t* db = nullptr;
  hs_scratch_t* scratch = nullptr;
};

SignatureSet::SignatureSet() : impl_(std::make_unique<Impl>()) {
  constexpr size_t n = std::size(kSignatures);
  const char* exprs[n];
  unsigned flags[n];
  unsigned ids[n];
  for (size_t i = 0; i < n; ++i) {
    exprs[i] = kSignatures[i].regex;
    flags[i] = HS_FLAG_CASELESS | HS_FLAG_DOTALL | HS_FLAG_SINGLEMATCH;
    ids[i] = static_cast<unsigned>(i);
  }
  hs_compile_error_t* err = nullptr;
  if (hs_compile_multi(exprs, flags, ids, static_cast<unsigned>(n), HS_MODE_BLOCK, nullptr,
                       &impl_->db, &err) != HS_SUCCESS) {
    std::fprintf(stderr, "boing: signature %d (%s) does not compile: %s\n", err->expression,
                 err->expression >= 0 ? kSignatures[err->expression].name : "?", err->message);
    hs_free_compile_error(err);
    std::abort();
  }
  if (hs_alloc_scratch(impl_->db, &impl_->scratch) != HS_SUCCESS) {
    std::fprintf(stderr, "boing: cannot allocate Hyperscan scratch space\n");
    std::abort();
  }
}

SignatureSet::~SignatureSet() {
  if (impl_->scratch) hs_free_scratch(impl_->scratch);
  if (impl_->db) hs_free_database(impl_->db);
}

size_t SignatureSet::PatternCount() const { return std::size(kSignatures); }

void SignatureSet::Scan(std::string_view text, std::vector<ContentMatch>& out) {
  if (text.empty()) return;
  auto on_match = [](unsigned id, unsigned long long, unsigned long long to, unsigned,
                     void* ctx) -> int {
    auto* v = static_cast<std::vector<ContentMatch>*>(ctx);
    v->push_back({kSignatures[id].cls, kSignatures[id].name, static_cast<size_t>(to)});
    return 0;
  };
  // Scan errors (only possible on invalid arguments) leave the matches found so far.
  hs_scan(impl_->db, text.data(), static_cast<unsigned>(text.size()), 0, impl_->scratch, on_match,
          &out);
}

}  // namespace boing::detect
