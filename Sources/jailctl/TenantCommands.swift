import ArgumentParser
import Foundation
import Glibc
import JailKit

struct Tenant: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tenant",
        abstract: "Hosting tenants: one jail per tenant from a template (php-tenant@NAME), served by the host's nginx.",
        subcommands: [TenantAdd.self, TenantRemove.self, TenantList.self, TenantShow.self, TenantNginxConfig.self])
}

struct TenantAdd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add",
        abstract: "Add a tenant (or update one): record it, make its directories, bring its jail up.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The tenant's name (the template's instance).") var name: String
    @Option(help: "The tenant's domain (default NAME.test).") var domain: String?
    @Option(help: "The template (Jails/TEMPLATE@.toml).") var template = "php-tenant"
    @Option(help: "Memory limit instead of the template's, e.g. 256M.") var memory: String?
    @Option(help: "Process limit instead of the template's.") var pids: Int?
    @Option(help: "CPU limit (CPUs) instead of the template's.") var cpu: Double?
    @Option(help: "Open files limit instead of the template's.") var nofile: UInt64?
    @Option(help: "The web server's group: only it (and the tenant) may reach the tenant's socket.") var webGroup = "www-data"

    func run() throws {
        try guarded {
            var o = TenantOptions()
            o.template = template
            o.domain = domain
            if let memory {
                guard let bytes = SizeText.parse(memory) else { throw JailError(.invalidSpec, "--memory \(memory): not a size like 256M") }
                o.memory = bytes
            }
            if let pids, !(1...4_194_304).contains(pids) { throw JailError(.invalidSpec, "--pids \(pids): not 1-4194304") }
            o.pids = pids
            if let cpu, !(cpu >= 0.01 && cpu.isFinite) { throw JailError(.invalidSpec, "--cpu \(cpu): at least 0.01") }
            o.cpu = cpu
            if let nofile, !(16...1_048_576).contains(nofile) { throw JailError(.invalidSpec, "--nofile \(nofile): not 16-1048576") }
            o.nofile = nofile
            o.webGroup = webGroup
            let i = try TenantManager(jails: global.manager()).add(name, options: o)
            print("\(i.name): \(i.state) (jail \(i.jail), domain \(i.domain), webroot \(i.webroot), socket \(i.socket))")
        }
    }
}

struct TenantRemove: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove", abstract: "Stop a tenant's jail and forget the tenant; --purge --yes also deletes its files.")
    @OptionGroup var global: GlobalOptions
    @Argument var name: String
    @Flag(help: "Also delete the tenant's web root, sessions, mail spool, logs and uid range.") var purge = false
    @Flag(help: "Confirm --purge.") var yes = false

    func validate() throws {
        if purge && !yes { throw ValidationError("--purge deletes the tenant's files: confirm with --yes") }
    }

    func run() throws {
        try guarded {
            try TenantManager(jails: global.manager()).remove(name, purge: purge)
            print(purge ? "\(name): removed, files deleted" : "\(name): removed (files kept)")
        }
    }
}

struct TenantList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List tenants.")
    @OptionGroup var global: GlobalOptions
    @Flag var json = false

    func run() throws {
        try guarded {
            let list = try TenantManager(jails: global.manager()).list()
            if json { return try printJSON(list) }
            print(pad("TENANT", 16) + pad("STATE", 20) + pad("DOMAIN", 24) + pad("HOST UID", 12) + "WEBROOT")
            for i in list {
                print(pad(i.name, 16) + pad(i.state, 20) + pad(i.domain, 24) + pad(i.hostUid.map(String.init) ?? "-", 12) + i.webroot)
            }
        }
    }
}

struct TenantShow: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Show one tenant.")
    @OptionGroup var global: GlobalOptions
    @Argument var name: String
    @Flag var json = false

    func run() throws {
        try guarded {
            let i = try TenantManager(jails: global.manager()).info(name)
            if json { return try printJSON(i) }
            let l = i.limits
            for (k, v) in [("tenant", i.name), ("jail", i.jail), ("state", i.state), ("domain", i.domain),
                           ("user", "uid \(i.uid) gid \(i.gid) in the jail; host uid \(i.hostUid.map(String.init) ?? "-") gid \(i.hostGid.map(String.init) ?? "-")"),
                           ("webroot", i.webroot), ("document root", i.documentRoot), ("socket", i.socket), ("home", i.home),
                           ("limits", "memory \(l.memory.map(String.init) ?? "none") pids \(l.pids.map(String.init) ?? "none") cpu \(l.cpu.map { String($0) } ?? "none") nofile \(l.nofile)")]
            {
                print(pad(k + ":", 15) + v)
            }
        }
    }
}

struct TenantNginxConfig: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nginx-config", abstract: "Print a tenant's nginx server block, or write it into DIR as TENANT.conf.")
    @OptionGroup var global: GlobalOptions
    @Argument var name: String
    @Option(help: "nginx's listen value.") var listen = "80"
    @Option(help: "Write DIR/NAME.conf (a directory nginx includes) instead of printing.") var write: String?

    func run() throws {
        try guarded {
            let text = try TenantManager(jails: global.manager()).nginxConfig(name, listen: listen)
            guard let dir = write else {
                print(text, terminator: "")
                return
            }
            let path = global.absolute(dir) + "/" + name + ".conf"
            let tmp = path + ".tmp"
            guard FileManager.default.createFile(atPath: tmp, contents: Data(text.utf8)), rename(tmp, path) == 0 else {
                throw JailError(.system, "cannot write \(path)")
            }
            print(path)
        }
    }
}
