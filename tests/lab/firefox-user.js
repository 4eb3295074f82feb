// Firefox ESR profile prefs for doh-trace's end-to-end test: DNS over HTTPS (TRR) to the
// lab's unbound at https://127.0.0.1:8443/dns-query, and no background lookups.
// Checked with Debian 12 firefox-esr 153.7.0esr (headless, as root, in a loopback-only netns).
//
// Use: copy to PROFILE/user.js (later lines win, so a harness may append overrides, e.g.
// user_pref("network.trr.useGET", true);). The lab CA must be in PROFILE's NSS DB:
//   certutil -N -d sql:PROFILE --empty-password
//   certutil -A -d sql:PROFILE -n doh-lab -t C,, -i W/pki/ca.pem
// Run inside the lab's network namespace:
//   env -i PATH=/usr/bin:/bin HOME=W/home MOZ_REMOTE_SETTINGS_DEVTOOLS=1 \
//     firefox-esr --headless --no-remote --profile PROFILE http://loop.doh.test:18080/
// HOME: set it to a scratch dir, or Firefox writes to ~/.cache, ~/.config/mozilla, ~/Downloads.
// MOZ_REMOTE_SETTINGS_DEVTOOLS=1 is what lets services.settings.server below take effect in a
// release build; without it Firefox keeps looking up firefox.settings.services.mozilla.com.
// Stop: SIGTERM to the firefox-esr PID; its children exit on their own within ~0.1 s.

// --- DoH (TRR): these three are all that is needed for lookups to reach unbound ---
user_pref("network.trr.mode", 3);                  // TRR only: no system resolver, no fallback
user_pref("network.trr.uri", "https://127.0.0.1:8443/dns-query");
user_pref("network.trr.confirmationNS", "skip");   // no confirmation lookup at startup
// Request method. Unset, Firefox ESR 153 sends GET /dns-query?dns=... Pinned here so the
// test doesn't depend on that default: false = POST with application/dns-message.
user_pref("network.trr.useGET", false);

// --- no background lookups (each line removed lookups seen in unbound's log) ---
user_pref("services.settings.server", "data:,#remote-settings-dummy/v1"); // needs MOZ_REMOTE_SETTINGS_DEVTOOLS=1
user_pref("datareporting.policy.dataSubmissionEnabled", false);  // privacy-notice tab (www.mozilla.org)
user_pref("datareporting.usage.uploadEnabled", false);           // incoming.telemetry.mozilla.org
user_pref("dom.push.connection.enabled", false);                 // push.services.mozilla.com
user_pref("app.normandy.enabled", false);                        // normandy.cdn.mozilla.net
user_pref("browser.region.network.url", "");                     // location.services.mozilla.com
user_pref("browser.region.update.enabled", false);
user_pref("browser.newtabpage.enabled", false);                  // top sites, ads.mozilla.org, ...
user_pref("browser.newtab.preload", false);
user_pref("browser.newtabpage.activity-stream.feeds.topsites", false);
user_pref("browser.newtabpage.activity-stream.feeds.section.topstories", false);
user_pref("browser.newtabpage.activity-stream.showSponsoredTopSites", false);
user_pref("browser.newtabpage.activity-stream.showSponsored", false);
user_pref("browser.safebrowsing.malware.enabled", false);        // safebrowsing.googleapis.com (~5 s in)
user_pref("browser.safebrowsing.phishing.enabled", false);
user_pref("browser.safebrowsing.downloads.enabled", false);
user_pref("browser.safebrowsing.blockedURIs.enabled", false);
user_pref("browser.safebrowsing.provider.google4.updateURL", "");
user_pref("browser.safebrowsing.provider.google5.updateURL", "");
user_pref("browser.safebrowsing.provider.mozilla.updateURL", "");
user_pref("media.eme.enabled", false);                           // plugin (GMP) update checks:
user_pref("media.gmp-widevinecdm.enabled", false);               // aus5.mozilla.org and
user_pref("media.gmp-gmpopenh264.enabled", false);               // update.googleapis.com (~20 s in)
user_pref("media.gmp-manager.url", "data:,");
user_pref("media.gmp-manager.chromium-update-url", "data:,");
user_pref("extensions.systemAddon.update.enabled", false);       // aus5.mozilla.org (~30 s in)
user_pref("extensions.update.enabled", false);                   // services.addons.mozilla.org
user_pref("extensions.getAddons.cache.enabled", false);
